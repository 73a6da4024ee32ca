import Glibc
import Testing
@testable import PowercutTrace
import PowercutTestSupport

/// What reading a trace gives — the whole trace or the error's line — and how many
/// events the fast path took.
private func outcome(_ bytes: [UInt8], fast: Bool) -> (result: Result<Trace, TraceError>, fastEvents: Int) {
    let reader: TraceReader
    do {
        reader = try TraceReader(bytes: bytes, name: "t.pct")
    } catch {
        return (.failure(error), 0)
    }
    reader.textReader?.fastPathEnabled = fast
    let result = Result { () throws(TraceError) -> Trace in try Trace(reader: reader) }
    return (result, reader.textReader?.fastEventCount ?? 0)
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Puts lines between a header (which defines stacks 1 and 2 and reads the op name
/// `a\x20b` once) and a tail of comment lines, so they lie inside the fast path's zone.
private func trace(_ lines: [UInt8]) -> [UInt8] {
    bytes("powercut-trace 1\npmem 0 0x100000\nstack 1 0x1\nstack 2 0x2\nop 9 begin dst=0 len=1 name=a\\x20b\nop 9 end\n")
        + lines + bytes("\nsfence\n# padding, so the lines above end well inside the buffer\n")
}

@Suite struct TextFastPathTests {
    /// Lines in the common shapes, and near misses of every kind.
    static let lines: [[UInt8]] = [
        // Taken by the fast path.
        "store 0x10 8", "store 0x10 8 stack=1", "ntstore 0x7f 8 stack=2 thread=3", "store 0x10 2 data=aBcD",
        "ntstore 0x10 2 stack=1 data=abcd thread=0", "clwb 0x40", "clflushopt 0x40 stack=1", "clflush 64", "sfence",
        "mfence", "fence", "wpqflush", "sfence # c", "sfence\t#c", "store 0x10 8\r", "store\t0x10  8 \t", "store 0X1f 8",
        "store 0x10 8 stack=0x1", "clflushopt 0x20#x", "sfence#x", "op 1 begin dst=0x10 len=8 name=a\\x20b\nop 1 end",
        "op 6 begin thread=0 src=0x99 name=a\\x20b contract=persist len=8 dst=0x10 stack=1\nop 6 end stack=2 thread=0",
        "op 3 begin dst=0 len=1 contract=flushcache\nop 3 end", "op 4 begin dst=0 len=1 contract=none\nop 4   end   # c",
        "op 5 begin dst=0 len=0\r\nop 5 end\r", "store 0xffffffffffffffff 1", "store 18446744073709551 1",
        // Left to the general path, read the same.
        "  store 0x10 8", "store 0x0000000000000000010 8", "store 00000000000000000016 8", "op 2 begin dst=0 len=1 name=new\nop 2 end",
        "mark a\\x00b", "durable 0 1", "stack 7 0x1 0x2", "pmem 0x200000 0x10 name=x volatile", "#only a comment", "", "\r", "   ",
        "store 0x10 8 # \u{1b}[31m", "store 0x10 1048576",
        // Errors, worded by the general path whichever path met them first.
        "store 0x10 8 stack=1 stack=1", "store 0x10 8 stack=0", "store 0x10 8 stack=3", "store 0x10 2 data=abc",
        "store 0x10 1 data=zz", "store 0x10 8x", "store 0x10 8 thread=1 thread=1", "clwb 0x10 0x20", "sfence 1",
        "store 0x10 8 data=", "store 0x10", "stores 0x10 8", "store0x10 8", "store 0x10 8\r\r", "store 0x10\r 8",
        "store 0x 8", "store 0x10 1 data=0g", "store 0x10 1 data=00 data=00", "store 0x10 1 data=00 bogus", "store 0x10 1 data=00x",
        "clflushop 0x10", "clflushoptt 0x10", "sfence x", "op 1 begin dst=0 len=1 len=2", "op 1 begin dst=0",
        "op 1 begin len=1 dst=0 contract=persis", "op 1 begin dst=0 len=1 contract=persistx", "op 1 bgin", "op x end",
        "op 9 begin dst=0 len=1", "op 1 end", "op 1 begin dst=0 len=1", "op 1 begin dst=0xffffffffffffffff len=2\nop 1 end",
        "store 0xffffffffffffffff 2", "store 0 0x100001", "store 0 0", "store 99999999999999999999 1",
        "store 0x10000000000000000 1", "store 0x10 8 thread=4294967296", "store 0x10 8 stack=4294967296", "store 0x10 8\u{0}",
        "sfence\u{1b}", "store 0x1\u{0}0 8", "store 0x10 8 stack=1\u{7f}", "op 1 begin dst=0 len=1 name=a\\x2\nop 1 end",
        "op 1 begin dst=0 len=1 name=\nop 1 end", "store 0x10 8 stack=999999999", "store 0x10 8 stack=1000000000",
        "store 0x10 8 stack=01", "clwb 0x40 stack=2\r", "clwb 0x40 stack=2 ", "clwb 0x40  stack=2", "line-size 64", "powercut-trace 1", "store 0x10 8 stack=", "thread=1",
    ].map { Array($0.utf8) }
    // Hex numbers of every length, and decimal ones up to past 64 bits.
    + (1...17).map { Array("clwb 0x\(String("123456789aBcDeF01".prefix($0)))".utf8) }
    + (1...21).map { Array("store \(String("184467440737095516159".prefix($0))) 1".utf8) } + [
        [0xFF], Array("sfence ".utf8) + [0xFF], Array("store 0x10 1 data=".utf8) + [0xC3, 0xA9], [0xEF, 0xBB, 0xBF] + Array("sfence".utf8),
    ]

    @Test(arguments: lines)
    func bothPathsReadEveryLineAlike(line: [UInt8]) {
        let t = trace(line)
        let general = outcome(t, fast: false), fast = outcome(t, fast: true)
        #expect(general.result == fast.result, "\(String(decoding: line, as: UTF8.self).debugDescription)")
    }

    @Test func theFastPathTakesTheCommonShapes() {
        let common = Self.lines[..<27].joined(separator: [0x0A])
        let (result, fastEvents) = outcome(trace(Array(common)), fast: true)
        let t = try? result.get()
        #expect(t != nil)
        // Every event but the header's first (read while finding the header's end).
        #expect(fastEvents == (t?.events.count ?? 0) - 1)
    }

    /// Lines that repeat the first eight address digits, the ` stack=D` tail or a
    /// store's ` S stack=D` of the line before (what the fast path reuses without
    /// reading them again) and then differ, or end early: every pair reads alike
    /// both ways.
    @Test func linesThatRepeatTheLastPrefixOrTailReadAlikeBothWays() {
        let lines = [
            "store 0x7f002e3cb108 8 stack=1", "ntstore 0x7f002e3cb110 8 stack=2", "clwb 0x7f002e3c", "clwb 0x7f002e3cZ",
            "clwb 0x7f002e3c1", "clwb 0x7f002e3cb1101", "clwb 0x7f002e3cb110123456", "clwb 0x7f002e3cb11012345",
            "clwb 0x7f002e3cb1x", "store 0x7f002e3c 8 stack=12", "store 0x7f002e3c 8 stack=1 ", "store 0x7f002e3c 8 stack=1\r",
            "store 0x7f002e3c 8 stack=1#", "store 0x7f002e3c 8 stack=3", "clwb 0x7f002e3c stack=1", "store 0x7f002e3cb108 0 stack=1",
            "store 0xffffffffffffffff 2 stack=1", "store 0x7f002e3cb108 1048577 stack=1", "store 0x7f002e3cb108 8 stack=1 stack=1",
            "sfence stack=2", "store 0x7F002E3Cb108 9 stack=2", "store 0x7f002e3cb108 8 stack=1x",
            "ntstore 0x7f002e3cb110 8 stack=1", "store 0x10 8 stack=2", "store 0xfffffffffffffffc 8 stack=1",
            "clwb 0x7f002e3c 8 stack=1", "store 0x7f002e3cb108\t8 stack=1", "store 0x7f002e3cb108 8 stack=1 thread=1",
            "store 0x7f002e3cb108 1 data=ab", "store 0x7f002e3cb108 8 stack=1 # c", "store 0x7f002e3cb108 8 stack=",
        ].map { Array($0.utf8) }
        var differing: [String] = []
        for a in lines {
            for b in lines {
                let t = trace(a + [0x0A] + b)
                if outcome(t, fast: false).result != outcome(t, fast: true).result {
                    differing.append(String(decoding: a + [0x0A] + b, as: UTF8.self).debugDescription)
                }
            }
        }
        #expect(differing.isEmpty, "\(differing.prefix(5))")
        // And the repeats are the fast path's to take.
        let repeats = trace(bytes("store 0x7f002e3cb108 8 stack=1\nstore 0x7f002e3cb110 8 stack=1\nclwb 0x7f002e3cb110 stack=1"))
        let (result, fastEvents) = outcome(repeats, fast: true)
        let events = (try? result.get())?.events.count ?? 0
        #expect(events == 6 && fastEvents == events - 1)
    }

    /// Mutated common lines (bytes replaced, inserted, dropped: blanks, `#`, `=`,
    /// newlines, NUL, ESC, non-UTF-8, digits) read alike both ways.
    @Test func mutatedLinesReadAlikeBothWays() {
        let seeds = Self.lines[..<27]
        let hostile: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1B, 0x20, 0x23, 0x3D, 0x5C, 0x78, 0x58, 0xFF, 0x80, 0x30, 0x31, 0x39, 0x66, 0x67, 0x61]
        var rng = SplitMix(seed: 13)
        var differing: [String] = []
        for seed in seeds {
            for _ in 0..<60 {
                var line = seed
                for _ in 0..<(1 + Int(rng.next() % 2)) {
                    let at = line.isEmpty ? 0 : Int(rng.next() % UInt64(line.count))
                    let b = hostile[Int(rng.next() % UInt64(hostile.count))]
                    switch rng.next() % 3 {
                    case 0 where !line.isEmpty: line[at] = b
                    case 1 where !line.isEmpty: line.remove(at: at)
                    default: line.insert(b, at: at)
                    }
                }
                let t = trace(line)
                if outcome(t, fast: false).result != outcome(t, fast: true).result {
                    differing.append(String(decoding: line, as: UTF8.self).debugDescription)
                }
            }
        }
        #expect(differing.isEmpty, "\(differing.prefix(5))")
    }

    /// A file of several MiB is read through many buffer refills; the lines that straddle
    /// them, and the buffer's last bytes, go the general way. Same trace both ways.
    @Test func aLongFileReadsAlikeAcrossBufferRefills() throws {
        var text = "powercut-trace 1\npmem 0 0x100000\nstack 1 0x1\n"
        var op: UInt64 = 0
        var k: UInt64 = 0
        while text.utf8.count < 5 << 20 {
            k += 1
            switch k % 11 {
            case 1: op += 1; text += "op \(op) begin dst=0x\(String(k % 0xff000, radix: 16)) len=\(k % 97) name=copy\n"
            case 2: text += "op \(op) end\n"
            case 0: text += "store 0x\(String(k % 0xff000, radix: 16)) 4 data=0a0B0c0D stack=1\n"
            case 3: text += "durable 0x10 \(1 + k % 7)   # not on the fast path\n"
            case 4: text += "  clwb 0x\(String(k % 0xff000, radix: 16))\n"
            case 5: text += "# a comment\n\n"
            default: text += "ntstore 0x\(String(k % 0xff000, radix: 16)) 8 stack=1\r\n"
            }
        }
        let path = "/tmp/powercut-fastpath-\(getpid()).pct"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        func read(fast: Bool) throws -> (Trace, Int) {
            let r = try TraceReader(path: path)
            r.textReader?.fastPathEnabled = fast
            return (try Trace(reader: r), r.textReader?.fastEventCount ?? 0)
        }
        let (general, _) = try read(fast: false)
        let (fast, taken) = try read(fast: true)
        #expect(general == fast)
        #expect(general.events.count > 100_000 && taken > general.events.count / 2)
    }

    @Test func eventLinesComeFromTheReader() throws {
        // Header records (init included) are not events; stacks between events are not
        // either; pmem between events is.
        let text = "powercut-trace 1\n# c\npmem 0 0x100\ninit 0 data=00\n  store 0 1 # #0\nstack 1 0x1\r\nsfence\r\n   # store\n"
            + "op 1 begin dst=0 len=1\nstore 0 1 stack=1\npmem 0x200 0x10\nop 1 end\nmark m\n# pad\n# pad\n"
        let r = try TraceReader(text: text)
        #expect(r.eventLines(of: [0, 1, 2, 3, 4, 5, 6, 99]) == [0: 5, 1: 7, 2: 9, 3: 10, 4: 11, 5: 12, 6: 13])
        // A malformed trace gives the lines found before its error.
        let bad = try TraceReader(text: "powercut-trace 1\nsfence\nop 1 begin dst=0 len=1\n")
        #expect(bad.eventLines(of: [0, 1, 2]) == [0: 2, 1: 3])
        let path = "/tmp/powercut-eventlines-\(getpid()).pctb"
        defer { unlink(path) }
        try Trace(reader: try TraceReader(text: text)).write(to: path, form: .binary)
        #expect(try TraceReader(path: path).eventLines(of: [0]) == [:])
    }

    @Test func eventLinesOverManyBatches() throws {
        var text = "powercut-trace 1\npmem 0 0x100000\n"
        var expected: [UInt64: Int] = [:]
        var line = 2
        for n in 0..<10_000 as Range<UInt64> {
            if n % 7 == 0 { text += "# every seventh event has a comment before it\n"; line += 1 }
            text += n % 3 == 0 ? "store 0x\(String(n, radix: 16)) 1\n" : "  clwb 0x\(String(n, radix: 16))\n"
            line += 1
            expected[n] = line
        }
        let wanted: Set<UInt64> = [0, 1, 511, 512, 4095, 4096, 4097, 9999]
        let r = try TraceReader(text: text)
        #expect(r.eventLines(of: wanted) == expected.filter { wanted.contains($0.key) })
    }
}
