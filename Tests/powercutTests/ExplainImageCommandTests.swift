import Foundation
import Testing

/// `explain TRACE --image PATH`: why one crash image's bytes could be there, and a clear
/// "no cut can leave this" for an image x86 forbids.
@Suite struct ExplainImageCommandTests {
    static let trace = """
        powercut-trace 1
        pmem 0x1000 0x100 name=log
        store 0x1040 8 data=1111111111111111
        store 0x1048 8 data=1111111111111111
        clwb 0x1040
        store 0x1000 8 data=0100000000000000
        clwb 0x1000
        sfence

        """

    /// The log's 256 bytes with the commit word set and the given record halves.
    func image(first: Bool, second: Bool) -> Data {
        var bytes = [UInt8](repeating: 0, count: 256)
        bytes[0] = 1
        if first { for i in 0x40..<0x48 { bytes[i] = 0x11 } }
        if second { for i in 0x48..<0x50 { bytes[i] = 0x11 } }
        return Data(bytes)
    }

    @Test func aTornRecordIsExplainedByTheWritesItKeptAndLost() throws {
        let s = Scratch()
        let t = try s.write("log.pct", Self.trace)
        let img = s.path("torn.img")
        try image(first: true, second: false).write(to: URL(fileURLWithPath: img))
        let run = try powercut(["explain", t, "--image", img])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("is a crash image of cut 5 (after #4 clwb, before #5 sfence)"))
        #expect(run.stdout.contains("persisted #0 store 0x1040..0x1047 (8 bytes)"))
        #expect(run.stdout.contains("lost      #1 store 0x1048..0x104f (8 bytes)"))
    }

    @Test func anImageX86ForbidsIsSaidToBeNoCrashImage() throws {
        let s = Scratch()
        let t = try s.write("log.pct", Self.trace)
        let img = s.path("forbidden.img")
        // The second half of the record without the first: a line never persists a
        // later cached write without the earlier ones.
        try image(first: false, second: true).write(to: URL(fileURLWithPath: img))
        let run = try powercut(["explain", t, "--image", img])
        #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
        #expect(!run.stdout.contains("is a crash image of cut"))
    }

    @Test func imageTakesNoOtherSelector() throws {
        let s = Scratch()
        let t = try s.write("log.pct", Self.trace)
        let run = try powercut(["explain", t, "--image", s.path("x.img"), "--finding", "1"])
        #expect(run.status == 64)
    }
}
