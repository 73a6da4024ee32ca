import Testing
import PowercutTrace
@testable import PowercutModel

/// Builds a trace from `(thread, record)` pairs written like the text form's records.
func threaded(_ records: [(UInt32, String)], domain: Domain = .adr) -> Trace {
    var header = TraceHeader()
    header.records = [.domain(domain), .pmem(PmemRange(base: 0, length: 0x1000))]
    var events: [Event] = []
    for (i, (t, text)) in records.enumerated() {
        let w = text.split(separator: " ").map(String.init)
        func num(_ s: String) -> UInt64 {
            let v = s.split(separator: "=").last.map(String.init) ?? s
            return v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16)! : UInt64(v)!
        }
        var e = Event(kind: .mark, seq: UInt64(i))
        e.thread = t
        switch w[0] {
        case "store": e.kind = .store; e.address = num(w[1]); e.size = num(w[2])
        case "ntstore": e.kind = .ntstore; e.address = num(w[1]); e.size = num(w[2])
        case "clwb": e.kind = .clwb; e.address = num(w[1])
        case "clflush": e.kind = .clflush; e.address = num(w[1])
        case "sfence": e.kind = .sfence
        case "wpqflush": e.kind = .wpqflush
        case "durable": e.kind = .durable; e.address = num(w[1]); e.size = num(w[2])
        case "begin": e.kind = .opBegin; e.op = num(w[1]); e.address = num(w[2]); e.size = num(w[3])
            e.contract = w.count > 4 ? Contract(name: w[4])! : .flushcache
        case "end": e.kind = .opEnd; e.op = num(w[1])
        default: e.kind = .mark
        }
        events.append(e)
    }
    return Trace(header: header, events: events)
}

@Suite struct ThreadTests {
    @Test func aFenceDrainsOnlyItsOwnThreadsNonTemporalStores() {
        let other = Replayer.replay(threaded([(1, "ntstore 0 8"), (2, "sfence"), (1, "durable 0 8")]))
        #expect(verdicts(other) == ["not-durable@#2 0x0+8 - wc #0"])
        let own = Replayer.replay(threaded([(1, "ntstore 0 8"), (1, "sfence"), (2, "durable 0 8")]))
        #expect(own.findings.isEmpty)
    }

    @Test func aFenceDrainsTheWriteBacksOfItsOwnThreadWhoeverStored() {
        // Thread 1 stores, thread 2 writes the line back and fences: durable.
        let helped = Replayer.replay(threaded([(1, "store 0 8"), (2, "clwb 0"), (2, "sfence"), (1, "durable 0 8")]))
        #expect(helped.findings.isEmpty)
        // Thread 1 writes back, thread 2 fences: thread 1's write-back is not ordered.
        let unordered = Replayer.replay(threaded([(1, "store 0 8"), (1, "clwb 0"), (2, "sfence"), (2, "durable 0 8")]))
        #expect(verdicts(unordered) == ["not-durable@#3 0x0+8 - flushing #0"])
        // A write-back by thread 2 of the already flushing line covers it for thread 2,
        // even though it finds nothing dirty (and is noted as redundant).
        let covered = Replayer.replay(threaded([(1, "store 0 8"), (1, "clwb 0"), (2, "clwb 0"), (2, "sfence"),
                                                (2, "durable 0 8")]))
        #expect(verdicts(covered) == ["redundant-flush@#2"])
    }

    @Test func eadrFencesDrainTheDirtyBytesTheThreadStoredLast() {
        let r = Replayer.replay(threaded([(1, "store 0 8"), (2, "store 8 8"), (2, "sfence"), (2, "durable 0 16")], domain: .eadr))
        #expect(verdicts(r) == ["not-durable@#3 0x0+8 - dirty #0"])
    }

    @Test func clflushIsImmediateForAnyThread() {
        let r = Replayer.replay(threaded([(1, "store 0 8"), (2, "clflush 0"), (3, "durable 0 8")]))
        #expect(r.findings.isEmpty)
    }

    @Test func opsBelongToTheirThread() {
        // Thread 1's op drains at thread 1's fence, not at thread 2's; thread 2's stores
        // inside it are not out of its bounds; the two threads' ops overlap.
        let r = Replayer.replay(threaded([
            (1, "begin 1 0 8"), (2, "begin 2 0x100 8 persist"), (1, "ntstore 0 8"), (2, "store 0x200 8"),
            (1, "end 1"), (2, "sfence"), (2, "end 2"), (1, "sfence"),
        ]))
        #expect(verdicts(r) == [
            "out-of-bounds-store@#3 0x200+8 outside dirty #3",
        ])
        #expect(r.findings[0].op?.id == 2)
        let late = Replayer.replay(threaded([(1, "begin 1 0 8"), (1, "ntstore 0 8"), (1, "end 1"), (2, "sfence")]))
        #expect(verdicts(late) == ["missing-drain@end", "not-durable@end 0x0+8 body wc #1"])
    }

    @Test func wpqHintsWorkForEveryThread() {
        let r = Replayer.replay(threaded([(1, "ntstore 0 8"), (1, "sfence"), (2, "wpqflush"), (2, "sfence"),
                                               (1, "durable 0 8")], domain: .wpq))
        #expect(r.findings.isEmpty)
    }

    @Test func releasedRangesForgetTheirBytesAndNewRangesAreTracked() {
        var t = threaded([(0, "store 0x2000 8"), (0, "durable 0x2000 8"), (0, "store 0 8"), (0, "durable 0 8")])
        var add = Event(kind: .pmem, seq: 0, address: 0x2000, size: 0x100)
        add.thread = 0
        var release = Event(kind: .pmemRelease, seq: 3, address: 0, size: 0x1000)
        release.thread = 0
        t.events.insert(add, at: 0)
        t.events.insert(release, at: 4)
        for i in t.events.indices { t.events[i].seq = UInt64(i) }
        let r = Replayer.replay(t)
        // The store to the new range is at risk; after the release, the old range's
        // bytes are no one's and the assertion says they are outside pmem.
        #expect(verdicts(r) == ["not-durable@#2 0x2000+8 - dirty #1", "not-durable@#5 0x0+8 - outside -"])
    }
}

@Suite struct AddressSpaceEdgeTests {
    @Test func theLastLineOfTheAddressSpaceIsAnOrdinaryLine() {
        let top: UInt64 = 0xffff_ffff_ffff_ff00
        var header = TraceHeader()
        header.records = [.pmem(PmemRange(base: top, length: 0x100))]
        func ev(_ kind: EventKind, _ seq: UInt64, _ a: UInt64 = 0, _ n: UInt64 = 0) -> Event {
            Event(kind: kind, seq: seq, address: a, size: n)
        }
        var begin = ev(.opBegin, 0, 0xffff_ffff_ffff_ffc3, 0x3d)
        begin.op = 1
        begin.contract = .persist
        var end = ev(.opEnd, 5)
        end.op = 1
        let trace = Trace(header: header, events: [
            begin, ev(.store, 1, 0xffff_ffff_ffff_ffc3, 0x3d), ev(.ntstore, 2, 0xffff_ffff_ffff_fff8, 8),
            ev(.clwb, 3, 0xffff_ffff_ffff_ffff), ev(.store, 4, 0xffff_ffff_ffff_ff00, 0x100), end,
            ev(.durable, 6, 0xffff_ffff_ffff_fff0, 0x10), ev(.pmemRelease, 7, top, 0x100),
            ev(.durable, 8, 0xffff_ffff_ffff_fff0, 0x10),
        ])
        let r = Replayer.replay(trace)
        #expect(verdicts(r) == [
            "out-of-bounds-store@#4 0xffffffffffffff00+195 outside dirty #4",
            "not-durable@#5 0xffffffffffffffc3+5 head dirty #4",
            "not-durable@#5 0xffffffffffffffc8+56 body dirty #4",
            "not-durable@#6 0xfffffffffffffff0+16 - dirty #4",
            "not-durable@#8 0xfffffffffffffff0+16 - outside -",
        ])
    }
}
