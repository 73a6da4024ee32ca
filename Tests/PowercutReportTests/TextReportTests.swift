import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

func checked(_ body: String, file: String = "t.pct", options: ReplayOptions = ReplayOptions()) throws -> CheckedTrace {
    let reader = try TraceReader(text: "powercut-trace 1\n" + body, name: file)
    let (result, _) = try Replayer.replay(reader: reader, options: options)
    return CheckedTrace(file: file, form: reader.form, header: reader.header, stacks: reader.stacks, result: result)
}

@Suite struct TextReportTests {
    @Test func framesNameTheModuleAndOffset() throws {
        let t = try checked("""
            module /usr/lib/libx.so 0x7f0000000000 0x10000
            pmem 0 0x100
            stack 1 0x7f0000001a2c 0x401000
            op 1 begin dst=0 len=8 contract=persist
            store 0 8 stack=1
            op 1 end
            """)
        let text = TextReport().render(t)
        #expect(text.contains("      at 0x7f0000001a2c: libx.so+0x1a2c\n      by 0x401000: ???\n"))
        #expect(text.contains("error: not-durable: 8 bytes of op 1 not durable at its return, #2"))
    }
}
