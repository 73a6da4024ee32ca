import Testing
@testable import PowercutTrace

/// Reads a whole text trace from a string.
func read(_ text: String, name: String = "t.pct") throws(TraceError) -> Trace {
    try Trace(reader: try TraceReader(text: text, name: name))
}

/// The error a malformed trace gives.
func error(_ text: String) -> TraceError? {
    do {
        _ = try read(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct TextReaderTests {
    @Test func readsTheSpecExample() throws {
        let t = try read("""
            powercut-trace 1
            meta subject memcpy_flushcache
            pmem 0x10000 0x1000 name=pool
            stack 1 0x401a2c 0x4020f0
            op 1 begin dst=0x1003d len=13 name=memcpy_flushcache
            store 0x1003d 3 stack=1        # #1 cached head
            clwb 0x1003d                   # #2
            ntstore 0x10040 8              # #3
            store 0x10048 2                # #4
            clwb 0x10048                   # #5
            op 1 end                       # #6
            sfence                         # #7
            """)
        #expect(t.header.pmem == [PmemRange(base: 0x10000, length: 0x1000, name: "pool")])
        #expect(t.stacks[1] == [0x401a2c, 0x4020f0])
        #expect(t.events.map(\.kind) == [.opBegin, .store, .clwb, .ntstore, .store, .clwb, .opEnd, .sfence])
        #expect(t.events.map(\.seq) == Array(0...7))
        #expect(t.events[0].address == 0x1003d && t.events[0].size == 13 && t.names == ["memcpy_flushcache"])
        #expect(t.events[1].stack == 1 && t.events[4].stack == 0)
        #expect(t.header.meta.first?.value == "memcpy_flushcache")
    }

    @Test func numbersAreDecimalOrHexInEitherCase() throws {
        let t = try read("powercut-trace 1\npmem 0X1000 4096\nstore 0x10aB 2\nstore 4097 0x1\n")
        #expect(t.events.map(\.address) == [0x10ab, 4097])
        #expect(t.events.map(\.size) == [2, 1])
    }

    @Test func optionalKeysComeInAnyOrder() throws {
        let t = try read("powercut-trace 1\npmem 0 0x100\nop 5 begin contract=persist name=x len=4 dst=0x10 src=0x99\nop 5 end\n")
        #expect(t.events[0].contract == .persist && t.events[0].source == 0x99 && t.events[0].size == 4)
    }

    @Test func dataIsKept() throws {
        let t = try read("powercut-trace 1\npmem 0 0x100\nstore 0x10 3 data=0aFF10\n")
        #expect(t.batch.data(of: t.events[0]) == [0x0a, 0xff, 0x10])
    }

    @Test func stacksMayBeDefinedBetweenEvents() throws {
        let t = try read("powercut-trace 1\npmem 0 0x100\nsfence\nstack 4 0x1\nstore 0 1 stack=4\n")
        #expect(t.events.map(\.kind) == [.sfence, .stackDefinition, .store])
        #expect(t.events.map(\.seq) == [0, 1, 1])
        #expect(t.eventCount == 2)
    }

    @Test func hugeDeclaredRangesCostNothing() throws {
        // A pmem range of nearly 2^64 bytes must not allocate anything.
        let t = try read("powercut-trace 1\npmem 0 0xffffffffffff0000\nstore 0xfffffffffffe0000 8\n")
        #expect(t.header.pmem[0].length == 0xffffffffffff0000)
    }

    // Every error Docs/trace-format.md lists: file:line, what is wrong, what was expected.
    @Test(arguments: [
        ("", "t.pct: empty trace"),
        ("store 0 1\n", "t.pct:1: missing header"),
        ("powercut-trace 2\n", "t.pct:1: unsupported trace version 2 (this build reads text version 1)"),
        ("powercut-trace 1\nstor 0 1\n", "t.pct:2: unknown record 'stor' (expected store, ntstore, clwb"),
        ("powercut-trace 1\nstore 0 1 colour=red\n", "t.pct:2: unknown key 'colour'"),
        ("powercut-trace 1\npmem 0 0x100 nmae=x\n", "t.pct:2: unknown key 'nmae'"),
        ("powercut-trace 1\nstore 0x1g 1\n", "t.pct:2: bad number '0x1g'"),
        ("powercut-trace 1\nstore 18446744073709551616 1\n", "t.pct:2: bad number"),
        ("powercut-trace 1\nstore 0x10000000000000000 1\n", "t.pct:2: bad number"),
        ("powercut-trace 1\nstore 0 0\n", "t.pct:2: store SIZE 0 is out of range"),
        ("powercut-trace 1\nstore 0 1048577\n", "t.pct:2: store SIZE 1048577 is out of range"),
        ("powercut-trace 1\npmem 0x1000 0\n", "t.pct:2: pmem range at 0x1000 has length 0"),
        ("powercut-trace 1\ndurable 0 0\n", "t.pct:2: durable LEN is 0"),
        ("powercut-trace 1\nstore 0xfffffffffffffffc 8\n", "t.pct:2: store at 0xfffffffffffffffc of 8 bytes runs past the end"),
        ("powercut-trace 1\npmem 0xfffffffffffff000 0x2000\n", "t.pct:2: pmem range 0xfffffffffffff000 + 0x2000 runs past the end"),
        ("powercut-trace 1\npmem 0 0x100\npmem 0x80 0x100\n", "t.pct:3: pmem range 0x80+0x100 overlaps range 0x0+0x100"),
        ("powercut-trace 1\nstore 0 2 data=00\n", "t.pct:2: data= has 1 bytes for a store of 2"),
        ("powercut-trace 1\nstore 0 1 data=zz\n", "t.pct:2: bad hex in data="),
        ("powercut-trace 1\nop 1 end\n", "t.pct:2: op 1 end without a matching 'op 1 begin'"),
        ("powercut-trace 1\nop 1 begin dst=0 len=1\nop 2 begin dst=0 len=1\n", "t.pct:3: op 2 begins while op 1 (begun at line 2) is still open"),
        ("powercut-trace 1\nop 1 begin dst=0 len=1\nop 1 end\nop 1 begin dst=0 len=1\n", "t.pct:4: op ID 1 is used twice"),
        ("powercut-trace 1\nop 1 begin dst=0 len=1\n", "t.pct:end: op 1 begun at line 2 is never ended"),
        ("powercut-trace 1\nop 1 begin dst=0 len=1\nop 2 end\n", "t.pct:3: op 2 end while op 1 (begun at line 2) is open"),
        ("powercut-trace 1\nstore 0 1 stack=3\n", "t.pct:2: stack=3 names a stack that is not defined"),
        ("powercut-trace 1\nop 1 begin len=1\n", "t.pct:2: op 1 begin has no dst="),
        ("powercut-trace 1\nop 1 begin dst=0 len=1 contract=eventually\n", "t.pct:2: unknown contract 'eventually'"),
        ("powercut-trace 1\ndomain adr2\n", "t.pct:2: unknown domain 'adr2' (expected adr, eadr or wpq)"),
        ("powercut-trace 1\nline-size 48\n", "t.pct:2: line-size 48 is not a power of two from 16 to 4096"),
        ("powercut-trace 1\nsfence\nline-size 64\n", "t.pct:3: header record 'line-size' after the first event"),
        ("powercut-trace 1\nstore 0\n", "t.pct:2: missing fields in 'store' record"),
        ("powercut-trace 1\nclwb 0 0\n", "t.pct:2: unexpected field '0'"),
        ("powercut-trace 1\nstack 1 0x1\nstack 1 0x2\n", "t.pct:3: stack 1 is defined twice"),
    ])
    func malformedTracesAreRejected(text: String, message: String) {
        let e = error(text)
        #expect(e != nil, "accepted: \(text)")
        #expect(e?.description.hasPrefix(message) == true, "got: \(e?.description ?? "nothing")")
    }

    @Test func crlfLineEndsAndTabsAreAccepted() throws {
        let t = try read("powercut-trace 1\r\npmem\t0  0x100\r\nstore\t0x10\t4\r\n")
        #expect(t.events.count == 1 && t.events[0].size == 4)
    }

    @Test func modulePathsUnescapeSpaces() throws {
        let t = try read("powercut-trace 1\nmodule /opt/my\\x20lib.so 0x1000 0x2000 build-id=abCD\n")
        #expect(t.header.modules == [Module(path: "/opt/my lib.so", base: 0x1000, size: 0x2000, buildID: "abCD")])
        #expect(TextFormat.line(for: t.header.records[0]) == "module /opt/my\\x20lib.so 0x1000 0x2000 build-id=abCD")
    }

    @Test func everyShapeOfACommonEventReadsTheSame() throws {
        // The common events have a fast path; odd spacing, comments, leading zeros,
        // upper-case hex, option order and thread=0 take the general one. Same events.
        let t = try read("""
            powercut-trace 1
            pmem 0 0x10000
            stack 1 0x401000
            store 0x10 8 stack=1 thread=2
              store\t0x10   8 thread=2   stack=1   # comment
            store 0X0000000000000000010 0x8 stack=1 thread=2
            ntstore 16 2 data=aBcD thread=0
            ntstore 0x10 2 thread=0 data=ABCD
            clflushopt 0x20#comment
            clflushopt 0x20 stack=1
            sfence
            sfence#x
            wpqflush thread=7
            """)
        let s = t.events
        #expect(s.map(\.kind) == [.store, .store, .store, .ntstore, .ntstore, .clflushopt, .clflushopt, .sfence, .sfence, .wpqflush])
        for k in 0..<3 { #expect(s[k].address == 0x10 && s[k].size == 8 && s[k].stack == 1 && s[k].thread == 2) }
        for k in 3..<5 {
            #expect(s[k].address == 0x10 && s[k].thread == 0 && t.batch.data(of: s[k]) == [0xab, 0xcd])
        }
        #expect(s[5].address == 0x20 && s[5].stack == 0 && s[6].stack == 1 && s[9].thread == 7)
        #expect(s.map(\.seq) == Array(0...9))
    }

    @Test(arguments: [
        ("store 0x10 8 stack=1 stack=1\n", "t.pct:4: key 'stack' given twice"),
        ("store 0x10 8 stack=0\n", "t.pct:4: stack=0 is not a valid stack ID"),
        ("store 0x10 8 stack=2\n", "t.pct:4: stack=2 names a stack that is not defined"),
        ("store 0x10 2 data=abc\n", "t.pct:4: data= has 1.5 bytes for a store of 2"),
        ("store 0x10 1 data=zz\n", "t.pct:4: bad hex in data="),
        ("store 0x10 8x\n", "t.pct:4: bad number '8x'"),
        ("store 0x10 8 thread=1 thread=1\n", "t.pct:4: key 'thread' given twice"),
        ("clwb 0x10 0x20\n", "t.pct:4: unexpected field '0x20'"),
        ("sfence 1\n", "t.pct:4: unexpected field '1'"),
        ("store 0x10 8 data=\n", "t.pct:4: data= has 0 bytes for a store of 8"),
        ("store 0x10\n", "t.pct:4: missing fields in 'store' record"),
    ])
    func fastPathEventsKeepTheirErrors(line: String, message: String) {
        let e = error("powercut-trace 1\npmem 0 0x100\nstack 1 0x1\n" + line)
        #expect(e?.description.hasPrefix(message) == true, "got: \(e?.description ?? "nothing")")
    }

    @Test func opsReadTheSameWhateverTheirShape() throws {
        let t = try read("""
            powercut-trace 1
            pmem 0 0x1000
            op 1 begin dst=0x10 len=8 name=a\\x20b
            op 1 end
            op 2 begin dst=0x10 len=8 name=a\\x20b thread=3
            op 2 end thread=3
            op 3 begin len=8 dst=0x20 name=c contract=persist
            op 3   end   # comment
            op 4 begin dst=0x20 len=8 name=a\\x20b stack=1
            op 4 end
            op 5 begin dst=0x20 len=8
            op 5 end
            """.replacingStackLine())
        let begins = t.events.filter { $0.kind == .opBegin }
        #expect(begins.map(\.op) == [1, 2, 3, 4, 5])
        #expect(begins.map(\.name) == [1, 1, 2, 1, 0])
        #expect(t.names == ["a b", "c"])
        #expect(begins.map(\.address) == [0x10, 0x10, 0x20, 0x20, 0x20] && begins.allSatisfy { $0.size == 8 })
        #expect(begins[1].thread == 3 && begins[2].contract == .persist && begins[3].stack == 1)
        #expect(error("powercut-trace 1\nop 1 begin dst=0 len=1 dst=2\n")?.description.hasPrefix("t.pct:2: key 'dst' given twice") == true)
        #expect(error("powercut-trace 1\nop 1 begin dst=0\n")?.description.hasPrefix("t.pct:2: op 1 begin has no len=") == true)
        #expect(error("powercut-trace 1\nop 1 ending\n")?.description.hasPrefix("t.pct:2: expected 'begin' or 'end' after 'op 1', found 'ending'") == true)
    }
}

extension String {
    /// Puts a `stack 1` definition after the header line.
    func replacingStackLine() -> String {
        var lines = split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.insert("stack 1 0x401000", at: 1)
        return lines.joined(separator: "\n")
    }
}
