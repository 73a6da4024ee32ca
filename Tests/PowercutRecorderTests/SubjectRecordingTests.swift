import Glibc
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutRecorder

/// A recorded event with its address made relative to the destination buffer's page,
/// adjacent stores of one kind merged (the subjects may split a cached run into
/// naturally aligned 1-, 2- and 4-byte stores; the subjects' description fixes the bytes, not the split).
func shape(_ t: Trace, base: UInt64) -> [String] {
    var out: [String] = []
    var run: (kind: EventKind, start: UInt64, end: UInt64)?
    func flush() {
        if let r = run { out.append("\(r.kind.keyword) \(r.start)+\(r.end - r.start)") }
        run = nil
    }
    for e in t.events where e.kind != .stackDefinition {
        switch e.kind {
        case .store, .ntstore:
            let a = e.address - base
            if let r = run, r.kind == e.kind, r.end == a {
                run!.end = a + e.size
            } else {
                flush()
                run = (e.kind, a, a + e.size)
            }
        default:
            flush()
            switch e.kind {
            case .clwb, .clflushopt, .clflush: out.append("writeback line \((e.address - base) & ~63)")
            case .opBegin: out.append("begin")
            case .opEnd: out.append("end")
            default: out.append(e.kind.keyword)
            }
        }
    }
    flush()
    return out
}

func record(_ subject: String, dst: Int, n: Int) throws -> (Trace, UInt64) {
    let h = try Harness(routine: .subject(subject), maxLength: max(n, 64), maxOffset: 64)
    let t = try h.record(dstOffset: dst, srcOffset: 0, length: n)
    return (t, UInt64(UInt(bitPattern: h.pmem)))
}

/// The recorder is process-wide (trap flag, SIGTRAP handler): these run one at a time.
@Suite(.serialized) struct SubjectRecordingTests {
    // Each expectation is worked out by hand from the subjects' described behaviour
    // (Sources/CPowercutSubjects/subjects.c, the head of each routine); "writeback"
    // is whichever of clwb/clflushopt/clflush CPUID picked.

    @Test func memcpyFlushcacheUnalignedCopy() throws {
        // d = 61, n = 13: not 8-aligned, so k = min(13, 8 - 61 mod 8) = 3 cached bytes
        // (61-63) and a write-back of line(61) = 0. 10 remain: no 32-byte round, one
        // 8-byte movnti at 64, 2 remain: none of 4, so 2 bytes cached at 72 and the
        // line holding them (64) written back. No fence: the caller's sfence follows.
        let (t, base) = try record("memcpy_flushcache", dst: 61, n: 13)
        #expect(shape(t, base: base) == ["begin", "store 61+3", "writeback line 0", "ntstore 64+8", "store 72+2",
                                         "writeback line 64", "end", "sfence"])
        #expect(Replayer.replay(t).errors == 0)
    }

    @Test func firstLineWriteBackStrandsTheTail2017() throws {
        // d = 62, n = 4: nocache 2016 with n < 8 and d not 4-aligned copies all 4 bytes
        // cached (62-65) then sfences; the first-line write-back writes back line(62) = 0
        // only, so bytes 64-65 of line 64 stay dirty: the 2017 bug.
        let (t, base) = try record("copy_user_flushcache_2017", dst: 62, n: 4)
        #expect(shape(t, base: base) == ["begin", "store 62+4", "sfence", "writeback line 0", "end", "sfence"])
        let r = Replayer.replay(t)
        let bad = r.findings.filter { $0.rule == .notDurable }
        #expect(bad.count == 1 && bad[0].ranges.count == 1)
        // h = (8 - 62 mod 8) mod 8 = 2 head bytes; t = (62 + 4) mod 8 = 2 tail bytes.
        #expect(bad[0].ranges[0].start == base + 64 && bad[0].ranges[0].length == 2)
        #expect(bad[0].ranges[0].position == .tail && bad[0].ranges[0].state == .dirty)
        #expect(r.findings.contains { $0.rule == .dirtyAtReturn })
    }

    @Test func fixedWriteBackCoversBothLines2020() throws {
        // The same copy with the 2020 fix: every line [62, 66) touches is written back.
        let (t, base) = try record("copy_user_flushcache_2020", dst: 62, n: 4)
        #expect(shape(t, base: base) == ["begin", "store 62+4", "sfence", "writeback line 0", "writeback line 64", "end", "sfence"])
        #expect(Replayer.replay(t).errors == 0)
    }

    @Test func nocache2023CachesAroundItsFence() throws {
        // d = 5, n = 2: d is odd, so 1 byte cached (d = 6, 1 left); d mod 4 = 2 needs 2
        // bytes, only 1 remains: straight to the tail, which sfences first and then
        // copies the last byte cached. The fixed write-back (n < 8) writes back line 0.
        let (t, base) = try record("copy_user_flushcache_2023", dst: 5, n: 2)
        #expect(shape(t, base: base) == ["begin", "store 5+1", "sfence", "store 6+1", "writeback line 0", "end", "sfence"])
        #expect(Replayer.replay(t).errors == 0)
    }

    @Test func constantSizeFastPathIgnoresAlignment() throws {
        // n = 16: two 8-byte movnti at d and d + 8, whatever d's alignment; no write-back.
        let (t, base) = try record("memcpy_flushcache_const", dst: 3, n: 16)
        #expect(shape(t, base: base) == ["begin", "ntstore 3+16", "end", "sfence"])
        #expect(t.events.filter { $0.kind == .ntstore }.map(\.size) == [8, 8])
        #expect(Replayer.replay(t).errors == 0)
    }

    @Test func the2015CoreNeverWritesBack() throws {
        // n = 4 < 8: all cached, then sfence; no write-back at all. 4 bytes at an
        // aligned address are all tail (h = 0, t = 4).
        let (t, base) = try record("memcpy_to_pmem_2015", dst: 0, n: 4)
        #expect(shape(t, base: base) == ["begin", "store 0+4", "sfence", "end", "sfence"])
        let r = Replayer.replay(t)
        let bad = r.findings.first { $0.rule == .notDurable }
        #expect(bad?.ranges.map { "\($0.position!) \($0.state) \($0.length)" } == ["tail dirty 4"])
    }

    @Test func tracesCarryStacksModulesAndSurviveTheTextForm() throws {
        let h = try Harness(routine: .subject("memcpy_flushcache"), maxLength: 64)
        let t = try h.record(dstOffset: 3, srcOffset: 0, length: 20, modules: true)
        #expect(!t.header.modules.isEmpty)
        let stores = t.events.filter { $0.kind.isStore }
        #expect(stores.allSatisfy { $0.stack != 0 })
        // The innermost frame is an instruction inside a loaded module.
        let ip = t.stacks[stores[0].stack]![0]
        #expect(t.header.modules.contains { $0.contains(ip) })
        // Text round trip keeps everything.
        let again = try Trace(reader: try TraceReader(text: t.text))
        #expect(again.events == t.events && again.stacks == t.stacks && again.header == t.header)
    }

    @Test func dataCaptureRecordsTheBytesWritten() throws {
        let h = try Harness(routine: .subject("memcpy_flushcache"), maxLength: 64)
        var o = Harness.Options()
        o.captureData = true
        let t = try h.record(dstOffset: 0, srcOffset: 5, length: 16, options: o)
        let b = t.batch
        let src = h.source.assumingMemoryBound(to: UInt8.self)
        for e in t.events where e.kind.isStore {
            #expect(e.hasData)
            let offset = Int(e.address - UInt64(UInt(bitPattern: h.pmem)))
            #expect(Array(b.data(of: e)) == (0..<Int(e.size)).map { src[5 + offset + $0] })
        }
    }

    @Test func aClosureIsRecordedToo() throws {
        let r = Recorder.shared
        try r.exclusive { () throws in try recordAClosure(r) }
    }

    func recordAClosure(_ r: Recorder) throws {
        try r.reset()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        defer { buffer.deallocate() }
        try r.addPmem(base: UInt64(UInt(bitPattern: buffer)), length: 128)
        try r.record { buffer.storeBytes(of: 0x1122_3344_5566_7788 as UInt64, toByteOffset: 8, as: UInt64.self) }
        let t = r.trace(modules: false)
        let stores = t.events.filter { $0.kind == .store }
        let base = UInt64(UInt(bitPattern: buffer))
        // Exactly the bytes written, however many instructions the compiler used
        // (an unoptimised build stores the value twice).
        #expect(!stores.isEmpty)
        #expect(stores.allSatisfy { $0.address - base == 8 && $0.size == 8 })
    }

    @Test func libpmemPersistRecordsAndIsDurable() throws {
        // Debian's libpmem, natively, on whatever path it picks on this CPU.
        let h = try Harness(routine: .library(path: "libpmem.so.1", symbol: "pmem_memcpy_persist"), maxLength: 600, maxOffset: 64)
        var o = Harness.Options()
        o.contract = .persist
        for (d, n) in [(0, 64), (3, 300), (61, 7), (17, 513)] {
            let t = try h.record(dstOffset: d, srcOffset: 0, length: n, options: o)
            #expect(t.events.contains { $0.kind == .sfence }, "dst+\(d) n=\(n)")
            #expect(t.events.contains { $0.kind.isStore })
            #expect(Replayer.replay(t).errors == 0, "dst+\(d) n=\(n)")
        }
    }

    @Test func unknownRoutinesAreClearErrors() throws {
        #expect(throws: RecorderError.self) { _ = try Routine.subject("memcpy_flushcach").resolve() }
        let lib = #expect(throws: RecorderError.self) { _ = try Routine.library(path: "/no/such/lib.so", symbol: "f").resolve() }
        #expect(lib?.description.hasPrefix("cannot load /no/such/lib.so:") == true)
        let sym = #expect(throws: RecorderError.self) { _ = try Routine.library(path: "libpmem.so.1", symbol: "pmem_nosuch").resolve() }
        #expect(sym?.description == "libpmem.so.1 has no symbol 'pmem_nosuch' (list its exported functions with: nm -D --defined-only libpmem.so.1)")
    }
}
