import Glibc
import Testing
@testable import PowercutTrace
import PowercutTestSupport

/// Issue 14's trace items: bad input gets one short line, memory stays bounded, and no
/// form accepts (or writes) what the other rejects.
@Suite struct HostileInputTests {
    /// One line, at most about 80 bytes of quoted text, no control bytes.
    func expectOneShortLine(_ e: TraceError?, _ prefix: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let d = e?.description ?? ""
        #expect(d.hasPrefix(prefix), "got: \(d.prefix(300))", sourceLocation: sourceLocation)
        #expect(d.utf8.count < 400, "message of \(d.utf8.count) bytes", sourceLocation: sourceLocation)
        #expect(!d.utf8.contains { $0 < 0x20 || $0 == 0x7F }, "control byte in: \(d.prefix(300))", sourceLocation: sourceLocation)
    }

    @Test func aLineOver8MiBIsAnError() {
        let long = "powercut-trace 1\npmem 0 0x100\nmark " + String(repeating: "a", count: 9 << 20) + "\n"
        let e = error(long)
        expectOneShortLine(e, "t.pct:3: line longer than 8 MiB, starting 'mark aaaa")
    }

    @Test func theReaderHoldsAtMostOneLineLimitOfDevZero() throws {
        // `check /dev/zero` grew without end: one endless line.
        let input = try ByteInput(path: "/dev/zero")
        let line = try input.nextLine(maxLength: TraceValidator.maxLineLength)
        #expect(line?.count == TraceValidator.maxLineLength + 1)
        #expect(input.capacity <= TraceValidator.maxLineLength + 3 * ByteInput.chunk)
        let e = #expect(throws: TraceError.self) { _ = try TraceReader(path: "/dev/zero") }
        expectOneShortLine(e, "/dev/zero:1: line longer than 8 MiB, starting '\\x00\\x00")
    }

    @Test func messagesQuoteAtMost80BytesEscaped() {
        let token = "\u{1b}[2J\u{1b}]0;owned\u{07}" + String(repeating: "x", count: 1_000_000)
        let e = error("powercut-trace 1\n\(token) 1\n")
        expectOneShortLine(e, "t.pct:2: unknown record '\\x1b[2J\\x1b]0;owned\\x07xxx")
        #expect(e?.description.contains("xxx…'") == true)
        #expect(e.map { $0.description.split(separator: "'")[1].utf8.count <= 83 } == true)
        let cr = error("powercut-trace 1\nstore 0x1\rq 1\n")
        expectOneShortLine(cr, "t.pct:2: bad number '0x1\\x0dq'")
        let binaryKey = try? binaryTrace([0x06, 0x03, 0x61, 0x0A, 0x1B, 0x01, 0x76, 0x07, 0x00])
        let e2 = #expect(throws: TraceError.self) { _ = try Trace(reader: TraceReader(bytes: binaryKey ?? [], name: "k.pctb")) }
        expectOneShortLine(e2, "k.pctb:byte 10: bad meta key 'a\\x0a\\x1b'")
    }

    @Test(arguments: [
        // meta key with a newline, a space, '#', a backslash
        ([0x06, 0x02, 0x61, 0x0A, 0x00, 0x07, 0x00], "byte 10: bad meta key"),
        ([0x06, 0x02, 0x61, 0x20, 0x00, 0x07, 0x00], "byte 10: bad meta key"),
        ([0x06, 0x02, 0x61, 0x23, 0x00, 0x07, 0x00], "byte 10: bad meta key"),
        ([0x06, 0x00, 0x00, 0x07, 0x00], "byte 10: bad meta key"),
        // a C1 control (U+008E, valid UTF-8) in a meta key: once read from binary into
        // a key the text form wrote with a backslash its reader rejects (found by fuzzing)
        ([0x06, 0x03, 0x61, 0xC2, 0x8E, 0x00, 0x07, 0x00], "byte 10: bad meta key 'a\\xc2\\x8e'"),
        // build-id not hex; empty module path
        ([0x04, 0x01, 0x61, 0x00, 0x01, 0x01, 0x02, 0x7A, 0x7A, 0x07, 0x00], "byte 15: bad build-id 'zz'"),
        ([0x04, 0x00, 0x00, 0x01, 0x00, 0x07, 0x00], "byte 10: empty module path"),
        // a varint of more than 64 bits: ten bytes whose last holds more than one bit
        ([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x07, 0x00], "bad varint (more than 64 bits"),
        ([0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], "bad varint (more than 64 bits"),
        // op contract bits without the "contract written" flag; unknown op flag bits
        ([0x03, 0x00, 0x10, 0x00, 0x29, 0x01, 0x00, 0x01, 0x08, 0x2A, 0x01, 0x07, 0x02], "op contract bits 1 without the 'contract written' flag"),
        ([0x03, 0x00, 0x10, 0x00, 0x29, 0x01, 0x00, 0x01, 0x20, 0x2A, 0x01, 0x07, 0x02], "unknown op flag bits 0x20"),
        // unknown pmem flag bits, in the header and between events; unknown module flags
        ([0x03, 0x00, 0x10, 0x04, 0x07, 0x00], "unknown pmem flag bits 0x4"),
        ([0x2E, 0x00, 0x10, 0x80, 0x07, 0x01], "unknown pmem flag bits 0x80"),
        ([0x04, 0x01, 0x61, 0x00, 0x01, 0x02, 0x07, 0x00], "unknown module flag bits 0x2"),
        // a string over the 1 MiB cap (its bytes need not even be there)
        ([0x06, 0x01, 0x6B, 0x81, 0x80, 0x40, 0x07, 0x00], "byte 12: meta value of 1048577 bytes is too long (at most 1048576"),
        // a stack with too many frames; a thread number over 32 bits
        ([0x05, 0x01, 0x81, 0x80, 0x04], "stack 1 has 65537 frames"),
        ([0x09, 0x80, 0x80, 0x80, 0x80, 0x10, 0x07, 0x00], "thread 4294967296 is too large"),
        // init: outside the header, empty, too long
        ([0x25, 0x08, 0x00, 0x01, 0x00, 0x07, 0x01], "header record (tag 0x8) after the first event"),
        ([0x08, 0x00, 0x00, 0x07, 0x00], "init at 0x0 holds 0 bytes"),
    ] as [([UInt8], String)])
    func malformedBinaryInputIsRejected(body: [UInt8], message: String) throws {
        let bytes = try binaryTrace(body)
        let e = #expect(throws: TraceError.self) { _ = try Trace(reader: TraceReader(bytes: bytes, name: "b.pctb")) }
        #expect(e?.description.contains(message) == true, "got: \(e?.description ?? "nothing")")
    }

    @Test func theLongestValidVarintIsAccepted() throws {
        let max: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        let t = try Trace(reader: TraceReader(bytes: try binaryTrace([0x03] + max + [0x01, 0x00, 0x07, 0x00]), name: "b.pctb"))
        #expect(t.header.pmem[0].base == UInt64.max)
    }

    @Test func convertNeverWritesATraceItsReaderRejects() throws {
        let dir = TemporaryDirectory()
        // A meta value over the string limit: the text reader rejects it as the binary
        // one would, so convert stops before writing anything.
        let big = "powercut-trace 1\nmeta note " + String(repeating: "\\x41", count: TraceText.maxLength + 1) + "\n"
        try OutputFile.write(big, to: dir.file("big.pct"))
        let e = #expect(throws: TraceError.self) { try convertTrace(from: dir.file("big.pct"), to: dir.file("big.pctb"), form: .binary) }
        #expect(e?.description.hasPrefix("\(dir.file("big.pct")):2: meta value of 1048577 bytes is too long") == true, "got \(e?.description ?? "")")
        #expect(access(dir.file("big.pctb"), F_OK) != 0)
        #expect(temporaries(in: dir.path).isEmpty)
        // A trace built in memory (a recorder's) that no reader would accept is refused
        // by both writers.
        for (record, problem) in [
            (HeaderRecord.meta(key: "k", value: String(repeating: "v", count: TraceText.maxLength + 1)), "meta value of 1048577 bytes is too long"),
            (.meta(key: "two words", value: "v"), "bad meta key 'two words'"),
            (.module(Module(path: "", base: 0, size: 1)), "empty module path"),
            (.module(Module(path: "/a", base: 0, size: 1, buildID: "not-hex")), "bad build-id 'not-hex'"),
        ] {
            var t = Trace()
            t.header.records = [record]
            for form in [TraceForm.text, .binary] {
                let e = #expect(throws: TraceError.self) { try t.write(to: dir.file("t"), form: form) }
                #expect(e?.description.contains("cannot write this trace: \(problem)") == true, "got \(e?.description ?? "")")
            }
        }
    }

    @Test func pmemRangesAreCheckedInOrderedTime() throws {
        // 100 k ranges declared out of order (the check was quadratic: 300 k took 19 s).
        var text = "powercut-trace 1\n"
        var rng = SplitMix(seed: 1)
        var bases = Array(0..<100_000).map { UInt64($0) * 0x100 }
        bases.shuffle(using: &rng)
        for b in bases { text += "pmem 0x\(String(b, radix: 16)) 0x100\n" }
        let t = try read(text + "sfence\n")
        #expect(t.header.pmem.count == 100_000)
        let e = error(text + "pmem 0x1080 0x10\n")
        #expect(e?.description.hasSuffix("pmem range 0x1080+0x10 overlaps range 0x1000+0x100 (ranges tracked at the same time must not overlap)") == true)
    }

    @Test func theRangeTreeAgreesWithAPlainList() {
        var rng = SplitMix(seed: 3)
        var tree = RangeTree()
        var list: [RangeTree.Range] = []
        for _ in 0..<20_000 {
            let base = rng.next() % 4096, length = 1 + rng.next() % 64
            let r = RangeTree.Range(base: base, length: length, isVolatile: false)
            let overlapping = list.first { $0.base <= r.last && r.base <= $0.last }
            #expect((tree.overlap(r) != nil) == (overlapping != nil))
            if rng.next() % 3 != 0 {
                if overlapping == nil {
                    tree.insert(r)
                    list.append(r)
                }
            } else if let victim = list.indices.randomElement(using: &rng) {
                #expect(tree.remove(base: list[victim].base) == list[victim])
                list.remove(at: victim)
            }
            let probe = rng.next() % 4200
            #expect(tree.range(containing: probe) == list.first { $0.base <= probe && probe <= $0.last })
            #expect(tree.count == list.count)
        }
    }
}
