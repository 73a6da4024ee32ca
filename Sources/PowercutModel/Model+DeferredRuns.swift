// Deferred runs: the body of a non-temporal copy loop, kept as one record until a
// fence retires it or something needs its lines.
//
// A coalesced run of non-temporal stores (`Event.runLength`) that fills whole lines no
// slot holds leaves those lines in a state the run alone decides: every byte wc, its
// newest store the run's store that covered it, one table entry per store in store
// order. With one thread and a fence that makes wc bytes durable (adr, eadr), the next
// fence drops those lines again untouched, which is what a copy loop followed by its
// sfence does. So such a run is kept here as (first store, count) and its lines get no
// slot. Anything else that reaches one of its lines first materializes the whole run,
// through the same path that stores a run at once, leaving exactly the slots the run
// would have left:
//
//   - `slot(forLine:create:)` for a line a deferred run covers (stores, write-backs,
//     every lookup of a line);
//   - the queries that read slots (`risks`, `state(of:)`, `slots`) and anything that
//     changes ranges or threads settle every deferred run first;
//   - `hasRisk` answers for deferred bytes without materializing: they are wc.
//
// The lines of deferred runs count as live (`liveLines`, `peakLive`), as they would be.

import PowercutTrace

/// Stores of one coalesced non-temporal run that fill lines firstLine..<endLine, none of
/// which had a slot or belonged to another deferred run when they were stored.
struct DeferredRun {
    var firstLine: UInt64
    var endLine: UInt64
    /// The first of these stores: its address, size, number and stack; `count` stores.
    var address: UInt64
    var size: UInt64
    var count: UInt32
    var seq: UInt64
    var stack: UInt32
}

/// The stores of a run that fill whole lines: stores from..<to of the run, lines
/// firstLine..<endLine.
struct WholeLines {
    var from: UInt64
    var to: UInt64
    var firstLine: UInt64
    var endLine: UInt64
}

extension PersistenceModel {

    /// Deferred runs kept at most; the oldest is materialized to make room.
    static let maxDeferredRuns = 8

    /// Runs may be deferred: one thread, lines of one mask word, no counts, no
    /// --nt-evicts (what the fast path needs), and a fence makes wc bytes durable.
    var defersRuns: Bool { fastStores && domain != .wpq }

    /// The stores of run `e` that fill whole lines, when there are any and each store
    /// stays within one line and a line's stores fit its slot's inline table.
    func wholeLines(of e: Event) -> WholeLines? {
        // A size that divides the line is a power of two: shifts, no divisions.
        let size = e.size, lineBytes = UInt64(lineSize), lineMask = lineBytes &- 1
        guard size > 0, size <= lineBytes, size & (size &- 1) == 0, e.address & (size &- 1) == 0 else { return nil }
        let sizeShift = UInt64(size.trailingZeroBitCount), perLine = lineBytes >> sizeShift
        guard perLine <= UInt64(Self.inlineRecords) else { return nil }
        // The decoder made sure no store of the run wraps.
        let last = e.address &+ (size &* UInt64(e.runLength) &- 1)
        let firstLine = (e.address >> lineShift) &+ (e.address & lineMask == 0 ? 0 : 1)
        let endLine = (last >> lineShift) &+ (last & lineMask == lineMask ? 1 : 0)
        guard endLine > firstLine else { return nil }
        let from = ((firstLine << lineShift) &- e.address) >> sizeShift
        return WholeLines(from: from, to: from &+ (endLine &- firstLine) &* perLine,
                          firstLine: firstLine, endLine: endLine)
    }

    /// Defers stores part.from..<part.to of run `e`, when their lines lie in one
    /// non-volatile range and none has a slot or is another deferred run's; false (and
    /// nothing changed) when they must be stored now.
    func deferRun(_ e: Event, _ part: WholeLines) -> Bool {
        let firstByte = part.firstLine << lineShift
        let lastByte = ((part.endLine &- 1) << lineShift) | UInt64(lineSize &- 1)
        if firstByte < hotLo || lastByte > hotHi {
            guard let r = rangeIndex(containing: firstByte), lastByte <= rangeLast[r], !rangeVolatile[r] else {
                return false
            }
            hotLo = rangeBase[r]
            hotHi = rangeLast[r]
        }
        if deferredOverlaps(part.firstLine, part.endLine &- 1) { return false }
        let lines = part.endLine &- part.firstLine
        if lines <= UInt64(liveCount) {
            var line = part.firstLine
            while line < part.endLine {
                if table.find(line) != nil { return false }
                line &+= 1
            }
        } else {
            for s in live where lineOf[Int(s)] >= part.firstLine && lineOf[Int(s)] < part.endLine { return false }
        }
        if deferredCount == Self.maxDeferredRuns { materialize(0) }
        deferred[deferredCount] = DeferredRun(firstLine: part.firstLine, endLine: part.endLine,
                                              address: e.address &+ part.from &* e.size, size: e.size,
                                              count: UInt32(truncatingIfNeeded: part.to &- part.from),
                                              seq: e.seq &+ part.from, stack: e.stack)
        deferredCount &+= 1
        deferredLines &+= Int(truncatingIfNeeded: lines)
        if liveCount &+ deferredLines > peakLive { peakLive = liveCount &+ deferredLines }
        return true
    }

    /// The deferred run whose lines include `line`.
    @inline(__always)
    func deferredRun(covering line: UInt64) -> Int? {
        for j in 0..<deferredCount where line >= deferred[j].firstLine && line < deferred[j].endLine { return j }
        return nil
    }

    /// Whether a deferred run has a line in firstLine...lastLine.
    func deferredOverlaps(_ firstLine: UInt64, _ lastLine: UInt64) -> Bool {
        for j in 0..<deferredCount where deferred[j].firstLine <= lastLine && firstLine < deferred[j].endLine {
            return true
        }
        return false
    }

    /// How many lines of firstLine...lastLine deferred runs hold (less than all of them).
    func deferredLines(_ firstLine: UInt64, _ lastLine: UInt64) -> UInt64 {
        var n: UInt64 = 0
        for j in 0..<deferredCount {
            let lo = max(firstLine, deferred[j].firstLine), hi = min(lastLine, deferred[j].endLine &- 1)
            if lo <= hi { n &+= hi &- lo &+ 1 }
        }
        return min(n, lastLine &- firstLine)
    }

    /// Writes deferred run j into its lines, as `storeRepeated` would have, and drops it.
    /// The fast path's line is dropped after (the caller may be changing the model).
    func materialize(_ j: Int) {
        let r = deferred[j]
        (deferred + j).update(from: deferred + j + 1, count: deferredCount &- j &- 1)
        deferredCount &-= 1
        deferredLines &-= Int(truncatingIfNeeded: r.endLine &- r.firstLine)
        var e = Event(kind: .ntstore, seq: r.seq, address: r.address, size: r.size, stack: r.stack)
        e.runLength = r.count
        storeEagerly(e, from: 0, to: UInt64(r.count))
        dropFastLine()
    }

    /// Materializes every deferred run.
    func settleDeferred() {
        while deferredCount > 0 { materialize(0) }
    }

    /// A fence by the only thread in adr or eadr: every deferred byte becomes durable,
    /// so the lines are dropped as the stores one by one would have been.
    func dropDeferred() {
        deferredCount = 0
        deferredLines = 0
    }
}
