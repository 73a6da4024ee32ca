import Testing
import PowercutTrace
@testable import PowercutModel

/// Replays an inline trace (the header line is added).
func replay(_ body: String, _ options: ReplayOptions = ReplayOptions()) throws -> ReplayResult {
    let reader = try TraceReader(text: "powercut-trace 1\n" + body)
    return try Replayer.replay(reader: reader, options: options).0
}

/// One line per finding range, as `rule@event position state store`.
func verdicts(_ r: ReplayResult) -> [String] {
    r.findings.flatMap { f -> [String] in
        let at = f.event.map { "#\($0)" } ?? "end"
        if f.ranges.isEmpty { return ["\(f.rule.rawValue)@\(at)"] }
        return f.ranges.map { g in
            "\(f.rule.rawValue)@\(at) 0x\(hex(g.start))+\(g.length) \(g.position?.rawValue ?? "-") \(g.state.rawValue) \(g.event.map { "#\($0)" } ?? "-")"
        }
    }
}

@Suite struct RuleTests {
    // The example of Docs/trace-format.md, with and without the tail's write-back.
    static let example = """
        pmem 0x10000 0x1000 name=pool
        op 1 begin dst=0x1003d len=13 name=memcpy_flushcache
        store 0x1003d 3
        clwb 0x1003d
        ntstore 0x10040 8
        store 0x10048 2
        clwb 0x10048
        op 1 end
        sfence

        """

    @Test func theSpecExampleIsClean() throws {
        #expect(verdicts(try replay(Self.example)).isEmpty)
    }

    @Test func withoutTheTailWriteBackTheTailIsLost() throws {
        let r = try replay(Self.example.replacingOccurrences(of: "clwb 0x10048\n", with: "sfence\n"))
        // The sfence replacing #5 keeps the numbering: the tail is dirty at #6 and #7.
        #expect(verdicts(r) == [
            "dirty-at-return@#6 0x10048+2 tail dirty #4",
            "not-durable@#7 0x10048+2 tail dirty #4",
        ])
        #expect(r.findings[1].ranges[0].missingText == "a write-back (clwb/clflushopt/clflush) of line 0x10040 after store #4, then a fence")
        #expect(r.findings.map(\.cut) == [7, 8])
    }

    @Test func dirtyAtReturnDoesNotApplyUnderEADR() throws {
        let r = try replay("domain eadr\npmem 0 0x100\nop 1 begin dst=0 len=8\nstore 0 8\nop 1 end\nsfence\n")
        #expect(verdicts(r).isEmpty)
    }

    @Test func theCommandLineDomainOverridesTheTrace() throws {
        let trace = "domain eadr\npmem 0 0x100\nop 1 begin dst=0 len=8\nstore 0 8\nop 1 end\nsfence\n"
        let r = try replay(trace, ReplayOptions(domain: .adr))
        #expect(r.domain == .adr)
        #expect(verdicts(r) == ["dirty-at-return@#2 0x0+8 body dirty #1", "not-durable@#3 0x0+8 body dirty #1"])
    }

    @Test func positionsFollowTheSpec() {
        // A 5-byte copy to 0x1003d: 3 head bytes, 2 tail bytes.
        let five = OpInfo(id: 1, dst: 0x1003d, length: 5, contract: .flushcache, begin: 0)
        #expect((0x1003d...0x10041).map { five.position(of: $0) } == [.head, .head, .head, .tail, .tail])
        // A 2-byte copy there is all head; 16 bytes at 0x10000 all body.
        let two = OpInfo(id: 1, dst: 0x1003d, length: 2, contract: .flushcache, begin: 0)
        #expect([two.position(of: 0x1003d), two.position(of: 0x1003e)] == [.head, .head])
        let sixteen = OpInfo(id: 1, dst: 0x10000, length: 16, contract: .flushcache, begin: 0)
        #expect((0x10000..<0x10010).allSatisfy { sixteen.position(of: $0) == .body })
        #expect(sixteen.position(of: 0x10010) == .outside)
    }

    @Test func lfenceIsNotAnEventButAFenceIs() throws {
        // Every barrier kind drains flushing and wc bytes.
        for barrier in ["sfence", "mfence", "fence"] {
            let r = try replay("pmem 0 0x100\nop 1 begin dst=0 len=16 contract=persist\nstore 0 8\nclwb 0\nntstore 8 8\n\(barrier)\nop 1 end\n")
            #expect(verdicts(r).isEmpty, "\(barrier) did not drain")
        }
    }

    @Test func aWriteBackCoversOnlyItsOwnLineAndEarlierStores() throws {
        let r = try replay("pmem 0 0x1000\nop 1 begin dst=0x38 len=16 contract=persist\nstore 0x38 16\nclwb 0x3f\nsfence\nop 1 end\n")
        // 16 bytes at 0x38: h = 0 and t = (0x38 + 16) mod 8 = 0, so all body.
        #expect(verdicts(r) == ["not-durable@#4 0x40+8 body dirty #1"])
    }

    @Test func clflushIsImmediateUnlessStrict() throws {
        let trace = "pmem 0 0x100\nop 1 begin dst=0 len=8 contract=persist\nstore 0 8\nclflush 4\nop 1 end\n"
        #expect(verdicts(try replay(trace)).isEmpty)
        var strict = ReplayOptions()
        strict.strictClflush = true
        #expect(verdicts(try replay(trace, strict)) == ["not-durable@#3 0x0+8 body flushing #1"])
    }

    @Test func ntEvictsTurnsTheLinesDirtyBytesIntoFlushing() throws {
        let trace = "pmem 0 0x100\nstore 0 8\nntstore 8 8\n"
        let plain = Replayer(header: try TraceReader(text: "powercut-trace 1\n" + trace).header)
        var options = ReplayOptions()
        options.ntEvicts = true
        let evicting = Replayer(header: try TraceReader(text: "powercut-trace 1\n" + trace).header, options: options)
        for r in [plain, evicting] {
            r.apply(Event(kind: .store, seq: 0, address: 0, size: 8))
            r.apply(Event(kind: .ntstore, seq: 1, address: 8, size: 8))
        }
        #expect(plain.state(of: 0) == .dirty && plain.state(of: 8) == .wc)
        #expect(evicting.state(of: 0) == .flushing && evicting.state(of: 8) == .wc)
    }

    @Test func wpqNeedsAFlushHintAfterTheBytesAreQueued() throws {
        let trace = "domain wpq\npmem 0 0x100\nop 1 begin dst=0 len=8 contract=persist\nstore 0 8\nclwb 0\nsfence\nwpqflush\nsfence\nop 1 end\n"
        #expect(verdicts(try replay(trace)).isEmpty)
        // Under adr the same trace is clean too; under wpq without the hint it is not.
        let noHint = trace.replacingOccurrences(of: "wpqflush\n", with: "")
        #expect(verdicts(try replay(noHint)) == ["not-durable@#5 0x0+8 body queued #1"])
        #expect(verdicts(try replay(noHint, ReplayOptions(domain: .adr))).isEmpty)
    }

    @Test func volatileRangesNeedNothingAndFlushesThereAreOverhead() throws {
        let r = try replay("pmem 0 0x100 volatile\nop 1 begin dst=0 len=8 contract=persist\nstore 0 8\nclwb 0\nop 1 end\n")
        #expect(verdicts(r) == ["unnecessary-flush@#2"])
        #expect(r.errors == 0 && r.notes == 1)
    }

    @Test func redundantFlushIsANote() throws {
        let r = try replay("pmem 0 0x100\nclwb 0x40\nstore 0 1\nclwb 0\nclwb 0\nsfence\n")
        #expect(verdicts(r) == ["redundant-flush@#0", "redundant-flush@#3"])
        #expect(r.findings.allSatisfy { $0.severity == .note })
    }

    @Test func flushesOutsidePmemAreIgnored() throws {
        #expect(try replay("pmem 0x1000 0x100\nclwb 0x5000\nsfence\n").findings.isEmpty)
    }

    @Test func outOfBoundsStoresAreErrorsOnlyForContractedOps() throws {
        let r = try replay("pmem 0 0x1000\nop 1 begin dst=0x10 len=8\nstore 0x8 0x10\nclwb 0\nop 1 end\nsfence\n")
        #expect(verdicts(r) == ["out-of-bounds-store@#1 0x8+8 outside dirty #1"])
        let none = try replay("pmem 0 0x1000\nop 1 begin dst=0x10 len=8 contract=none\nstore 0x8 0x10\nop 1 end\n")
        #expect(none.findings.isEmpty)
        // Stores outside every pmem range are not the model's business.
        let dram = try replay("pmem 0x1000 0x1000\nop 1 begin dst=0x1010 len=8\nntstore 0x1010 8\nstore 0x9000 8\nop 1 end\nsfence\n")
        #expect(dram.findings.isEmpty)
    }

    @Test func aDrainingFenceJudgesEveryWaitingOp() throws {
        let r = try replay("pmem 0 0x1000\nop 1 begin dst=0 len=8\nstore 0 8\nop 1 end\nop 2 begin dst=0x80 len=8\nstore 0x80 8\nop 2 end\nsfence\n")
        #expect(r.findings.filter { $0.rule == .notDurable }.map { $0.op?.id } == [1, 2])
        #expect(r.findings.filter { $0.rule == .notDurable }.allSatisfy { $0.event == 6 })
    }

    @Test func missingDrainJudgesAtTheEnd() throws {
        let r = try replay("pmem 0 0x100\nop 1 begin dst=0 len=8\nntstore 0 8\nop 1 end\n")
        #expect(verdicts(r) == ["missing-drain@end", "not-durable@end 0x0+8 body wc #1"])
        #expect(r.findings.map(\.cut) == [3, 3])
        #expect(r.warnings == 1 && r.errors == 1)
    }

    @Test func durableAssertionsJudgeTheirRange() throws {
        let r = try replay("pmem 0 0x100\nstore 0 8\ndurable 4 2\nclwb 0\nsfence\ndurable 0 8\n")
        #expect(verdicts(r) == ["not-durable@#1 0x4+2 - dirty #0"])
    }

    @Test func aLineWhoseBytesAreAllDurableIsForgotten() throws {
        let r = Replayer(header: try TraceReader(text: "powercut-trace 1\npmem 0 0x100000\n").header)
        for i in 0..<1000 {
            let a = UInt64(i) * 64
            r.apply(Event(kind: .store, seq: UInt64(3 * i), address: a, size: 64))
            r.apply(Event(kind: .clwb, seq: UInt64(3 * i + 1), address: a))
            r.apply(Event(kind: .sfence, seq: UInt64(3 * i + 2)))
        }
        #expect(r.model.liveLines == 0)
        #expect(r.finish().peakLiveLines == 1)
    }

    @Test func cutsCountAtRiskBytesByState() throws {
        var options = ReplayOptions()
        options.recordCuts = true
        let r = try replay("pmem 0 0x100\nstore 0 3\nclwb 0\nntstore 8 8\nsfence\n", options)
        #expect(r.cuts == [
            CutCounts(),
            CutCounts(dirty: 3),
            CutCounts(flushing: 3),
            CutCounts(flushing: 3, wc: 8),
            CutCounts(),
        ])
    }

    @Test func largeFindingsAreCappedButCounted() throws {
        var options = ReplayOptions()
        options.maxRangesPerFinding = 2
        var trace = "pmem 0 0x1000\nop 1 begin dst=0 len=64 contract=persist\n"
        for i in 0..<8 { trace += "store \(i * 8) 8\n" }
        trace += "op 1 end\n"
        let r = try replay(trace, options)
        #expect(r.findings[0].ranges.count == 2 && r.findings[0].omittedRanges == 6 && r.findings[0].bytes == 64)
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

@Suite struct CountTests {
    @Test func findingBytesCountEveryRangeEvenWhenRangesAreLeftOut() throws {
        // A 4097-byte non-temporal copy with no fence: one range per store, far more
        // than are kept, and the byte count still covers all of them.
        var trace = "pmem 0 0x2000\nop 1 begin dst=0 len=4097\n"
        for i in 0..<512 { trace += "ntstore \(i * 8) 8\n" }
        trace += "store 4096 1\nclwb 4096\nop 1 end\n"
        let r = try replay(trace)
        let drain = try #require(r.findings.first { $0.rule == .notDurable })
        #expect(drain.omittedRanges > 0 && drain.ranges.count == 256)
        #expect(drain.bytes == 4097)
    }

    @Test func findingsBeyondTheCapAreCountedNotKept() throws {
        var options = ReplayOptions()
        options.maxFindings = 3
        var trace = "pmem 0 0x10000\n"
        for i in 0..<10 { trace += "op \(i + 1) begin dst=\(i * 64) len=8\nntstore \(i * 64) 8\nop \(i + 1) end\n" }
        let r = try replay(trace, options)
        #expect(r.findings.count == 3)
        #expect(r.warnings == 10 && r.errors == 10)
    }

    @Test func aTraceThatJudgesNothingSaysSo() throws {
        let nothing = try replay("pmem 0x1000 0x100\nstore 0x1000 8\nstore 0x9000 8\nstore 0x10fc 8\nop 1 begin dst=0x1000 len=8 contract=none\nop 1 end\n")
        #expect(!nothing.checkedAnything)
        #expect(nothing.storesOutsidePmem == 2)
        #expect(try replay("pmem 0 8\ndurable 0 8\n").checkedAnything)
        #expect(try replay("pmem 0 8\nop 1 begin dst=0 len=8 contract=persist\nop 1 end\n").checkedAnything)
    }

    @Test func manyStoresToOneLineKeepTheirOwnEventNumbers() throws {
        // More distinct stores than a line's table holds inline: compaction must keep
        // each byte naming its own newest store.
        var trace = "pmem 0 0x100\n"
        for round in 0..<5 { for i in 0..<64 { trace += "store \(i) 1\n"; _ = round } }
        trace += "clwb 0\ndurable 0 64\n"
        let r = try replay(trace)
        let f = try #require(r.findings.first)
        #expect(f.ranges.count == 64)
        for (i, g) in f.ranges.enumerated() {
            #expect(g.start == UInt64(i) && g.state == .flushing && g.event == UInt64(4 * 64 + i) && g.via == 320)
        }
    }
}

/// Collects the per-cut series as it streams past.
final class SeriesObserver: ReplayObserver {
    var series: [CutCounts] = []
    var threads: [UInt32] = []
    var needsAtRiskCounts: Bool { true }
    func replayStarted(_ replayer: Replayer) { series.append(replayer.counts) }
    func replayer(_ replayer: Replayer, applied event: Event, data: ArraySlice<UInt8>?) {
        series.append(replayer.counts)
        threads.append(replayer.thread)
    }
}

@Suite struct StreamingTests {
    @Test func anObserverSeesThePerCutSeriesWithoutTheResultKeepingIt() throws {
        let text = "powercut-trace 1\npmem 0 0x100\nstore 0 3\nclwb 0\nntstore 8 8\nsfence\nstore 64 64\n"
        var options = ReplayOptions()
        options.recordCuts = true
        let kept = try Replayer.replay(reader: try TraceReader(text: text), options: options).0
        let observer = SeriesObserver()
        let reader = try TraceReader(text: text)
        let r = Replayer(header: reader.header, observer: observer)
        var batch = EventBatch()
        while try reader.read(into: &batch) { r.apply(batch) }
        let streamed = r.finish()
        #expect(streamed.cuts == nil)
        #expect(observer.series == kept.cuts)
        #expect(observer.series.last == CutCounts(dirty: 64))
    }

    @Test func observersLearnEachEventsThread() {
        var header = TraceHeader()
        header.records = [.pmem(PmemRange(base: 0, length: 0x100))]
        let observer = SeriesObserver()
        let r = Replayer(header: header, observer: observer)
        var batch = EventBatch()
        for (i, t) in [UInt32(0), 3, 3, 1].enumerated() {
            var e = Event(kind: .ntstore, seq: UInt64(i), address: UInt64(i) * 8, size: 8)
            e.thread = t
            batch.events.append(e)
        }
        r.apply(batch)
        #expect(observer.threads == [0, 3, 3, 1])
        #expect(r.isMultithreaded)
        // Each thread's wc bytes wait for that thread's fence.
        var fence = Event(kind: .sfence, seq: 4)
        fence.thread = 3
        r.apply(fence)
        #expect(r.state(of: 0) == .wc && r.state(of: 8) == .durable && r.state(of: 16) == .durable && r.state(of: 24) == .wc)
    }
}
