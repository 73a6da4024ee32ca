import Glibc
import Testing
import PowercutTrace
@testable import PowercutModel
import PowercutTestSupport

/// A random trace of copy routines: runs of back-to-back stores of one size (the body
/// of a copy loop), with heads, tails, write-backs and fences, ops whose bounds the
/// runs may leave, pmem ranges that end (or turn volatile) mid-run, a range released
/// and declared again, a run to the top of the address space, and thread switches. The
/// shapes a binary reader coalesces.
func copyTrace(seed: UInt64, copies: Int, domain: Domain, lineSize: UInt64, threads: Bool = true) -> String {
    var rng = SplitMix(state: seed)
    var s = "powercut-trace 1\nline-size \(lineSize)\ndomain \(domain)\n"
    s += "pmem 0x10000 0x3000 name=a\npmem 0x13000 0x800 volatile\npmem 0xfffffffffffff000 0x1000 name=top\n"
    s += "stack 1 0x401000\nstack 2 0x401100\n"
    for c in 1...copies {
        let thread = rng.below(5) == 0 && threads ? " thread=\(1 + rng.below(2))" : ""
        let top = rng.below(12) == 0
        let size: UInt64 = [8, 8, 8, 16, 4, 12, 1, 32][Int(rng.below(8))]
        let count = 1 + rng.below(rng.below(3) == 0 ? 200 : 24)
        var d = top ? 0 &- size &* count : 0x10000 + rng.below(0x3600)
        // Copy loops mostly store aligned words after an unaligned head.
        if !top && rng.below(3) != 0 { d = d / size * size }
        let kind = rng.below(3) == 0 ? "store" : "ntstore"
        let stack = rng.below(3) == 0 ? "" : " stack=\(1 + rng.below(2))"
        // Bounds that fit the copy, or fall short of it at either end.
        let slack = rng.below(4) == 0 ? min(rng.below(3 * size + 1), size * count) : 0
        let dst = rng.below(2) == 0 ? d : d &+ slack
        let len = size &* count &- slack
        s += "op \(c) begin dst=0x\(hex(dst)) len=\(len) contract=\(["flushcache", "persist", "none"][Int(rng.below(3))])\(thread)\n"
        if rng.below(3) == 0 { s += "store 0x\(hex(d &- 3)) 3\(thread)\n" }
        for i in 0..<count {
            s += "\(kind) 0x\(hex(d)) \(size)\(stack)\(thread)\n"
            d &+= size
            if i == count / 2 && rng.below(8) == 0 { s += "clwb 0x\(hex(d &- 1))\(thread)\n" }
            if i == count / 3 && rng.below(10) == 0 { s += "mark midway\(thread)\n" }
        }
        if top && rng.below(2) == 0 { s += "store 0x0 8\(thread)\n" }  // the address after the top: not a run's next store
        if kind == "store" || rng.below(2) == 0 {
            var line = (d &- size &* count) / lineSize * lineSize
            while line < d && rng.below(10) != 0 {
                s += "clwb 0x\(hex(line))\(thread)\n"
                line &+= lineSize
            }
        }
        s += "op \(c) end\(thread)\n"
        // The range ends (forgetting its states) and is declared again before the fence.
        if rng.below(15) == 0 { s += "pmem-release 0x10000 0x3000\(thread)\npmem 0x10000 0x3000 name=a\(thread)\n" }
        if rng.below(6) != 0 { s += "sfence\(thread)\n" }
        if domain == .wpq && rng.below(3) == 0 { s += "wpqflush\(thread)\nsfence\(thread)\n" }
    }
    return s
}

@Suite struct StoreRunTests {
    /// Reads every event of a trace file, runs expanded into their stores.
    func events(of path: String, coalescing: Bool) throws -> (events: [Event], runs: Int) {
        let reader = try TraceReader(path: path)
        reader.coalescesStoreRuns = coalescing
        var out: [Event] = []
        var runs = 0
        var batch = EventBatch()
        while try reader.read(into: &batch, max: 97) {
            for e in batch.events {
                if e.runLength > 1 { runs += 1 }
                e.forEachMember { out.append($0) }
            }
        }
        return (out, runs)
    }

    /// Writes copy trace `seed`, its domain and line size chosen by the seed, as t.pct and
    /// t.pctb in `dir`.
    func writeCopyTrace(seed: UInt64, copies: Int, threads: Bool = true, in dir: String) throws -> (Domain, UInt64) {
        let domain = Domain.allCases[Int(seed % 3)]
        let lineSize: UInt64 = [64, 16, 128][Int(seed / 3 % 3)]
        try OutputFile.write(copyTrace(seed: seed, copies: copies, domain: domain, lineSize: lineSize, threads: threads),
                             to: "\(dir)/t.pct")
        try convertTrace(from: "\(dir)/t.pct", to: "\(dir)/t.pctb", form: .binary)
        return (domain, lineSize)
    }

    @Test func aCoalescingReaderGivesTheSameStoresAndAReplayTheSameVerdicts() throws {
        let dir = "/tmp/powercut-runs-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = system("rm -rf \(dir)") }
        var runs = 0
        for seed in UInt64(1)...36 {
            let (domain, lineSize) = try writeCopyTrace(seed: seed, copies: 60, in: dir)
            let plain = try events(of: "\(dir)/t.pctb", coalescing: false)
            let coalesced = try events(of: "\(dir)/t.pctb", coalescing: true)
            #expect(plain.runs == 0)
            #expect(coalesced.events == plain.events, "seed \(seed)")
            runs += coalesced.runs
            var counting = ReplayOptions()
            counting.countAtRisk = true
            for options in [ReplayOptions(), ReplayOptions(ntEvicts: true, strictClflush: true),
                            ReplayOptions(recordCuts: true), counting] {
                // Text is never coalesced: it is the store-by-store replay.
                let (a, _) = try Replayer.replay(file: "\(dir)/t.pct", options: options)
                let (b, _) = try Replayer.replay(file: "\(dir)/t.pctb", options: options)
                // On a difference, name the first finding that differs, not all of them.
                let common = min(a.findings.count, b.findings.count)
                let differs = (0..<common).first { a.findings[$0] != b.findings[$0] }
                    ?? (a.findings.count == b.findings.count ? nil : common)
                #expect(differs == nil, "seed \(seed), line \(lineSize), \(domain): finding \(differs ?? 0) of \(a.findings.count) and \(b.findings.count) differs")
                #expect(a.events == b.events && a.cuts == b.cuts && a.storesOutsidePmem == b.storesOutsidePmem
                        && a.opCount == b.opCount && a.peakLiveLines == b.peakLiveLines)
                if a.findings != b.findings { return }
            }
        }
        // Not vacuous: most copies came as runs.
        #expect(runs > 36 * 30)
    }

    /// Samples the state of bytes across the copies' range at every event but a store,
    /// and counts the events at which a run was still deferred.
    final class StateSampler: ReplayObserver {
        var samples: [ByteState] = []
        var deferredSeen = 0
        var observesStores: Bool { false }
        func replayer(_ replayer: Replayer, applied event: Event, data: ArraySlice<UInt8>?) {
            if replayer.model.deferredCount > 0 { deferredSeen += 1 }
            for j in UInt64(0)..<97 { samples.append(replayer.state(of: 0x10000 + j &* 0x95)) }
        }
    }

    @Test func runsKeptWholeUntilTheirLinesAreNeededLeaveTheSameStates() throws {
        // Copy loops of non-temporal stores that fill lines wait as one record until a
        // fence, a query or another store needs their lines; what anyone sees between
        // stores is what the stores one by one leave.
        let dir = "/tmp/powercut-deferred-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = system("rm -rf \(dir)") }
        var deferredSeen = 0
        for seed in UInt64(100)...111 {
            let (domain, lineSize) = try writeCopyTrace(seed: seed, copies: 40, threads: seed % 4 == 0, in: dir)
            var results: [(ReplayResult, StateSampler)] = []
            for path in ["\(dir)/t.pct", "\(dir)/t.pctb"] {
                let sampler = StateSampler()
                let reader = try TraceReader(path: path)
                let replayer = Replayer(header: reader.header, observer: sampler)
                _ = try replayer.apply(reader)
                results.append((replayer.finish(names: reader.names), sampler))
            }
            let (text, binary) = (results[0], results[1])
            let differs = zip(text.1.samples, binary.1.samples).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(differs == nil && text.1.samples.count == binary.1.samples.count,
                    "seed \(seed), line \(lineSize), \(domain): sample \(differs ?? -1) differs")
            #expect(text.0.findings == binary.0.findings && text.0.peakLiveLines == binary.0.peakLiveLines)
            #expect(text.1.deferredSeen == 0)
            deferredSeen += binary.1.deferredSeen
        }
        // Not vacuous: runs were deferred when the observer looked.
        #expect(deferredSeen > 20, "\(deferredSeen)")
    }

    @Test func theCorpusCopyLoopComesAsOneRun() throws {
        let path = "Traces/adr-copy-loop-binary.pctb"
        let reader = try TraceReader(path: path)
        reader.coalescesStoreRuns = true
        var batch = EventBatch()
        var lengths: [UInt32] = []
        while try reader.read(into: &batch) { lengths += batch.events.filter { $0.kind == .ntstore }.map(\.runLength) }
        // The first body store has its own delta; most of the 63 after it, which repeat
        // one record, come as one run (the last 64 bytes of a file are read one by one).
        #expect(lengths.reduce(0, +) == 64 && lengths.max()! >= 32, "\(lengths)")
        #expect(try events(of: path, coalescing: true).events == (try events(of: path, coalescing: false).events))
    }

    @Test func aRunThatLeavesItsOpIsJudgedStoreByStore() throws {
        var text = "powercut-trace 1\npmem 0x1000 0x1000\nop 1 begin dst=0x1010 len=16\n"
        for i in 0..<6 { text += "ntstore 0x\(hex(0x1000 + 8 * UInt64(i))) 8\n" }
        text += "op 1 end\nsfence\n"
        // The reader's fast path, which coalesces, needs 64 bytes ahead of it.
        text += String(repeating: "sfence\n", count: 64)
        let dir = "/tmp/powercut-runs-bounds-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = system("rm -rf \(dir)") }
        try OutputFile.write(text, to: "\(dir)/t.pct")
        try convertTrace(from: "\(dir)/t.pct", to: "\(dir)/t.pctb", form: .binary)
        #expect(try events(of: "\(dir)/t.pctb", coalescing: true).runs == 1)
        let (r, _) = try Replayer.replay(file: "\(dir)/t.pctb")
        let outside = r.findings.filter { $0.rule == .outOfBoundsStore }.map { $0.event }
        // Stores #1, #2 (below dst) and #5, #6 (past its end); #3 and #4 are inside.
        #expect(outside == [1, 2, 5, 6])
        #expect(r.events == 9 + 64)
    }

    @Test func writersRefuseARunRatherThanWriteOneStore() throws {
        var e = Event(kind: .ntstore, seq: 0, address: 0x1000, size: 8)
        e.runLength = 3
        var header = TraceHeader()
        header.records = [.pmem(PmemRange(base: 0x1000, length: 0x100))]
        let trace = Trace(header: header, events: [e])
        let path = "/tmp/powercut-runs-writer-\(getpid()).pctb"
        defer { unlink(path) }
        for form in [TraceForm.binary, .text] {
            #expect(throws: TraceError.self) { try trace.write(to: path, form: form) }
        }
        #expect(e.member(2).address == 0x1010 && e.member(2).seq == 2 && e.member(2).runLength == 1)
    }
}
