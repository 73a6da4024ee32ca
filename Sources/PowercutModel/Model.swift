// powercut's persistence model: what a power failure can lose, byte by byte.
//
// WHAT IS MODELLED
//
// A store on x86-64 goes from the store buffer into the cache (an ordinary store) or
// into a write-combining buffer (a non-temporal store), then to the memory controller's
// write pending queue (WPQ), then to the media. The platform decides which of these
// survive a power failure — its persistence domain:
//
//   adr   the WPQ and the media (the default; Optane with ADR). A cached byte needs a
//         write-back of its line (clwb, clflushopt or clflush) and then a fence; a
//         non-temporal byte needs a fence.
//   eadr  the CPU caches as well (eADR, CXL global persistent flush). Any byte needs only
//         a fence (the store and WC buffers are still volatile); write-backs change
//         nothing and are reported as unnecessary.
//   wpq   the media only (no ADR; "deep flush"). As adr, and then a write to a flush-hint
//         address and a fence push the queued bytes to the media.
//
// For every byte of declared pmem that has been stored to, the model keeps the state of
// the newest value stored there:
//
//   dirty     a cached store not yet written back
//   flushing  written back (clwb/clflushopt) with no fence since
//   wc        a non-temporal store still in a write-combining buffer
//   queued    (wpq) fenced into the WPQ, not yet pushed by a flush hint
//   durable   survives a power failure at every later cut point
//
// Every state but durable is "at risk". How each event moves bytes:
//
//   store a n      [a, a+n) become dirty (both lines if it crosses a boundary)
//   ntstore a n    [a, a+n) become wc; the line's other dirty bytes stay dirty, or with
//                  --nt-evicts become flushing (the line is evicted with them)
//   clwb/clflushopt a   the dirty bytes of line(a) become flushing (eadr: no change)
//   clflush a      the dirty bytes of line(a) become durable at once (wpq: queued);
//                  with --strict-clflush it acts as clflushopt
//   sfence/mfence/fence  flushing and wc bytes become durable (eadr: dirty ones too;
//                  wpq: they become queued, and bytes queued when a wpqflush was seen
//                  become durable)
//   wpqflush       (wpq) marks the queued bytes for the next fence
//
// Bytes in a `volatile` pmem range are never at risk; a write-back there is overhead.
//
// A trace of N events has N+1 cut points; cut k is a power failure after event k-1 and
// before event k. The replayer (Replayer.swift) walks them in order and judges the op
// contracts and assertions at the cut points where they apply. A verdict decided at an
// event #k judges the state just after it, cut k+1.
//
// HOW IT IS STORED
//
// Memory is tracked per cache line (64 bytes unless the trace says otherwise) and
// sparsely: a line has state only while some byte of it is at risk, so a declared range
// of any size costs nothing until it is written, and memory follows the lines at risk,
// not the trace's length. A live line holds six bit masks (dirty, flushing, wc, queued,
// flush-hinted, newest-store-was-non-temporal) and, per byte, the newest store's event
// number and stack and the event that last moved the byte (write-back or fence). A line
// whose bytes are all durable is dropped, which is exactly what an untouched line is.
// Fences visit only the lines with flushing, wc or queued bytes.
//
// WHAT IS APPROXIMATED
//
// - The cache may write a dirty line back at any moment of its choosing. The model
//   counts such a line as at risk until an explicit write-back and fence; that is the
//   guarantee a program can rely on, and what the verdicts are about.
// - Whether a non-temporal store to a line with dirty bytes evicts the line differs by
//   microarchitecture; the default keeps the conservative reading (--nt-evicts for the
//   other).
// - clflush is taken as ordered with stores and other clflushes (no fence needed), the
//   reading of Intel's programming guide and PMDK (--strict-clflush for the other).
// - Only the persistence of values is judged, not their content: a store of the value
//   a byte already held still has to be made durable.
// - A store that straddles the edge of a pmem range is tracked only for its pmem part.
// - Crash images (which prefixes of cached stores a line may persist) are not
//   enumerated here; the states bound them.

import PowercutTrace

/// Which states a query selects.
struct StateSet: OptionSet {
    let rawValue: UInt8
    static let dirty = StateSet(rawValue: 1)
    static let flushing = StateSet(rawValue: 2)
    static let wc = StateSet(rawValue: 4)
    static let queued = StateSet(rawValue: 8)
    static let atRisk: StateSet = [.dirty, .flushing, .wc, .queued]
}

/// A run of at-risk bytes as the model reports them, in address order.
struct RiskRun {
    var start: UInt64
    var length: UInt64
    var state: ByteState
    var store: UInt64
    var nonTemporal: Bool
    var stack: UInt32
    var via: UInt64?
}

/// What a write-back did, for the flush notes.
enum WriteBackOutcome {
    /// No declared pmem in the line.
    case notPmem
    /// The line is in a volatile range.
    case volatile
    /// In eadr: write-backs are never needed.
    case eadr
    /// The line had no dirty byte.
    case redundant
    case wroteBack
}

/// The per-byte state machine of persistence-model.md over sparse cache lines.
final class PersistenceModel {
    let domain: Domain
    let ntEvicts: Bool
    let strictClflush: Bool
    let lineSize: Int
    private let lineShift: UInt64
    private let wordsPerLine: Int
    private let ranges: [PmemRange]   // sorted by base
    // The same ranges as plain numbers, for the per-event lookups (no String retains).
    private let rangeBase: UnsafeMutablePointer<UInt64>
    private let rangeLast: UnsafeMutablePointer<UInt64>     // inclusive
    private let rangeVolatile: UnsafeMutablePointer<Bool>
    private let rangeCount: Int
    private var lastRange = 0

    // Slot storage, grown on demand. Masks are laid out [slot][mask][word].
    private static let maskCount = 6
    private static let dirtyMask = 0, flushingMask = 1, wcMask = 2, queuedMask = 3, hintedMask = 4, ntMask = 5
    private var capacity = 0
    private var masks: UnsafeMutablePointer<UInt64>
    private var storeSeq: UnsafeMutablePointer<UInt64>
    private var viaSeq: UnsafeMutablePointer<UInt64>
    private var stackOf: UnsafeMutablePointer<UInt32>
    private var lineOf: UnsafeMutablePointer<UInt64>     // the slot's line number
    private var livePosition: UnsafeMutablePointer<Int32>
    private var isPending: UnsafeMutablePointer<Bool>
    private var freeSlots: [Int32] = []
    private var slotsUsed: Int32 = 0
    private var table = LineTable()
    /// Slots in use, dense, for whole-model walks.
    private(set) var live: [Int32] = []
    /// Slots with flushing, wc or queued bytes: what a fence or wpqflush must visit.
    private var pending: [Int32] = []
    private var visiting: [Int32] = []
    private var lastLine: UInt64 = .max
    private var lastSlot: Int32 = -1

    /// At-risk bytes by state (dirty, flushing, wc, queued), kept up to date for the
    /// per-cut series. Behind a pointer: no exclusivity checks on the hot path.
    private let counters: UnsafeMutablePointer<UInt64>
    private static let cDirty = 0, cFlushing = 1, cWC = 2, cQueued = 3
    /// The most lines at risk at once.
    private(set) var peakLive = 0

    var counts: CutCounts {
        CutCounts(dirty: counters[0], flushing: counters[1], wc: counters[2], queued: counters[3])
    }

    /// Keep `counters` up to date (popcounts on every store; only the per-cut series needs it).
    let counting: Bool

    init(domain: Domain, lineSize: UInt64, ranges: [PmemRange], ntEvicts: Bool, strictClflush: Bool, counting: Bool) {
        self.counting = counting
        self.domain = domain
        self.ntEvicts = ntEvicts
        self.strictClflush = strictClflush
        self.lineSize = Int(lineSize)
        lineShift = UInt64(lineSize.trailingZeroBitCount)
        wordsPerLine = max(1, Int(lineSize) / 64)
        self.ranges = ranges.sorted { $0.base < $1.base }
        rangeCount = self.ranges.count
        rangeBase = .allocate(capacity: max(1, rangeCount))
        rangeLast = .allocate(capacity: max(1, rangeCount))
        rangeVolatile = .allocate(capacity: max(1, rangeCount))
        for (i, r) in self.ranges.enumerated() {
            rangeBase[i] = r.base
            rangeLast[i] = r.base &+ (r.length - 1)
            rangeVolatile[i] = r.isVolatile
        }
        counters = .allocate(capacity: 4)
        counters.initialize(repeating: 0, count: 4)
        masks = .allocate(capacity: 0)
        storeSeq = .allocate(capacity: 0)
        viaSeq = .allocate(capacity: 0)
        stackOf = .allocate(capacity: 0)
        lineOf = .allocate(capacity: 0)
        livePosition = .allocate(capacity: 0)
        isPending = .allocate(capacity: 0)
        growSlots(to: 64)
    }

    deinit {
        rangeBase.deallocate()
        rangeLast.deallocate()
        rangeVolatile.deallocate()
        counters.deallocate()
        masks.deallocate()
        storeSeq.deallocate()
        viaSeq.deallocate()
        stackOf.deallocate()
        lineOf.deallocate()
        livePosition.deallocate()
        isPending.deallocate()
        table.deallocate()
    }

    private func growSlots(to newCapacity: Int) {
        func grow<T>(_ p: inout UnsafeMutablePointer<T>, _ per: Int, _ fill: T) {
            let q = UnsafeMutablePointer<T>.allocate(capacity: newCapacity * per)
            q.initialize(repeating: fill, count: newCapacity * per)
            if capacity > 0 { q.update(from: p, count: capacity * per) }
            p.deallocate()
            p = q
        }
        grow(&masks, Self.maskCount * wordsPerLine, 0)
        grow(&storeSeq, lineSize, 0)
        grow(&viaSeq, lineSize, 0)
        grow(&stackOf, lineSize, 0)
        grow(&lineOf, 1, 0)
        grow(&livePosition, 1, -1)
        grow(&isPending, 1, false)
        capacity = newCapacity
    }

    /// Lines holding at-risk bytes (the model's memory).
    var liveLines: Int { live.count }

    // MARK: Ranges

    /// The index of the declared range that contains `address`.
    @inline(__always)
    func rangeIndex(containing address: UInt64) -> Int? {
        let r = lastRange
        if r < rangeCount && address >= rangeBase[r] && address <= rangeLast[r] { return r }
        var lo = 0, hi = rangeCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if rangeBase[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, address <= rangeLast[lo - 1] else { return nil }
        lastRange = lo - 1
        return lo - 1
    }

    /// Calls `body` with each piece of [first, last] (inclusive) that lies in a declared
    /// range, in address order, with that range.
    func forEachPmemPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64, PmemRange) -> Void) {
        for r in ranges {
            let rLast = r.base &+ (r.length - 1)
            if rLast < first { continue }
            if r.base > last { break }
            body(max(first, r.base), min(last, rLast), r)
        }
    }

    /// Calls `body` with the pieces of [first, last] that no declared range covers.
    func forEachUntrackedPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64) -> Void) {
        var cursor = first
        var done = false
        for r in ranges {
            let rLast = r.base &+ (r.length - 1)
            if rLast < cursor { continue }
            if r.base > last { break }
            if r.base > cursor { body(cursor, r.base - 1) }
            if rLast >= last { done = true; break }
            cursor = rLast + 1
        }
        if !done { body(cursor, last) }
    }

    // MARK: Slots

    @inline(__always)
    private func slot(forLine line: UInt64, create: Bool) -> Int32? {
        if line == lastLine { return lastSlot }
        if let s = table.find(line) {
            lastLine = line
            lastSlot = s
            return s
        }
        guard create else { return nil }
        let s: Int32
        if let f = freeSlots.popLast() {
            s = f
        } else {
            if Int(slotsUsed) == capacity { growSlots(to: capacity * 2) }
            s = slotsUsed
            slotsUsed += 1
        }
        table.insert(line, s)
        lineOf[Int(s)] = line
        livePosition[Int(s)] = Int32(live.count)
        live.append(s)
        if live.count > peakLive { peakLive = live.count }
        lastLine = line
        lastSlot = s
        return s
    }

    /// Drops a slot whose bytes are all durable.
    private func release(_ s: Int32) {
        let line = lineOf[Int(s)]
        table.remove(line)
        if lastLine == line { lastLine = .max; lastSlot = -1 }
        let p = Int(livePosition[Int(s)])
        let moved = live.removeLast()
        if moved != s {
            live[p] = moved
            livePosition[Int(moved)] = Int32(p)
        }
        livePosition[Int(s)] = -1
        let m = masks + Int(s) * Self.maskCount * wordsPerLine
        m.update(repeating: 0, count: Self.maskCount * wordsPerLine)
        freeSlots.append(s)
    }

    @inline(__always)
    private func maskPointer(_ s: Int32, _ which: Int) -> UnsafeMutablePointer<UInt64> {
        masks + (Int(s) * Self.maskCount + which) * wordsPerLine
    }

    private func isAllDurable(_ s: Int32) -> Bool {
        let m = masks + Int(s) * Self.maskCount * wordsPerLine
        for w in 0..<(4 * wordsPerLine) where m[w] != 0 { return false }
        return true
    }

    private func hasPendingBytes(_ s: Int32) -> Bool {
        for w in 0..<wordsPerLine {
            if maskPointer(s, Self.flushingMask)[w] | maskPointer(s, Self.wcMask)[w] | maskPointer(s, Self.queuedMask)[w] != 0 {
                return true
            }
        }
        return false
    }

    @inline(__always)
    private func markPending(_ s: Int32) {
        if !isPending[Int(s)] {
            isPending[Int(s)] = true
            pending.append(s)
        }
    }

    @inline(__always)
    private static func bits(_ lo: Int, _ hi: Int) -> UInt64 {
        // Bits lo..<hi of a word, 0 <= lo < hi <= 64.
        let width = hi - lo
        return (width == 64 ? UInt64.max : (UInt64(1) << UInt64(width)) - 1) << UInt64(lo)
    }

    @inline(__always)
    private func pop(_ x: UInt64) -> UInt64 { counting ? UInt64(x.nonzeroBitCount) : 0 }

    // MARK: Events

    /// A cached or non-temporal store of `size` bytes. Only the parts in non-volatile
    /// declared pmem are tracked.
    @inline(__always)
    func store(_ address: UInt64, _ size: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let last = address &+ (size - 1)
        if let r = rangeIndex(containing: address), last <= rangeLast[r] {
            if rangeVolatile[r] { return }
            storeTracked(address, last, seq: seq, stack: stack, nonTemporal: nonTemporal)
            return
        }
        forEachPmemPiece(address, last) { first, pieceLast, range in
            if !range.isVolatile { storeTracked(first, pieceLast, seq: seq, stack: stack, nonTemporal: nonTemporal) }
        }
    }

    @inline(__always)
    private func storeTracked(_ first: UInt64, _ last: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        if wordsPerLine == 1 && first >> lineShift == last >> lineShift && !counting && !ntEvicts {
            // The common case: one line of at most 64 bytes, one word per mask.
            let lineMask = UInt64(lineSize - 1)
            let lo = Int(first & lineMask), hi = Int(last & lineMask) + 1
            let s = slot(forLine: first >> lineShift, create: true)!
            let m = Self.bits(lo, hi)
            let p = masks + Int(s) * Self.maskCount
            p[Self.flushingMask] &= ~m
            p[Self.queuedMask] &= ~m
            p[Self.hintedMask] &= ~m
            if nonTemporal {
                p[Self.dirtyMask] &= ~m
                p[Self.wcMask] |= m
                p[Self.ntMask] |= m
                markPending(s)
            } else {
                p[Self.dirtyMask] |= m
                p[Self.wcMask] &= ~m
                p[Self.ntMask] &= ~m
            }
            let base = Int(s) * lineSize
            (storeSeq + base + lo).update(repeating: seq, count: hi - lo)
            (stackOf + base + lo).update(repeating: stack, count: hi - lo)
            return
        }
        var line = first >> lineShift
        let lastLineNumber = last >> lineShift
        let lineMask = UInt64(lineSize - 1)
        while true {
            let lo = line == first >> lineShift ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            storeLine(slot(forLine: line, create: true)!, lo, hi, seq: seq, stack: stack, nonTemporal: nonTemporal)
            if line == lastLineNumber { break }
            line += 1
        }
    }

    @inline(__always)
    private func storeLine(_ s: Int32, _ lo: Int, _ hi: Int, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let dirty = maskPointer(s, Self.dirtyMask), flushing = maskPointer(s, Self.flushingMask)
        let wc = maskPointer(s, Self.wcMask), queued = maskPointer(s, Self.queuedMask)
        let hinted = maskPointer(s, Self.hintedMask), nt = maskPointer(s, Self.ntMask)
        var w = lo >> 6
        let lastWord = (hi - 1) >> 6
        while w <= lastWord {
            let m = Self.bits(max(lo, w << 6) - (w << 6), min(hi, (w << 6) + 64) - (w << 6))
            counters[Self.cDirty] -= pop(dirty[w] & m)
            counters[Self.cFlushing] -= pop(flushing[w] & m)
            counters[Self.cWC] -= pop(wc[w] & m)
            counters[Self.cQueued] -= pop(queued[w] & m)
            flushing[w] &= ~m
            queued[w] &= ~m
            hinted[w] &= ~m
            if nonTemporal {
                dirty[w] &= ~m
                wc[w] |= m
                nt[w] |= m
                counters[Self.cWC] += pop(m)
            } else {
                dirty[w] |= m
                wc[w] &= ~m
                nt[w] &= ~m
                counters[Self.cDirty] += pop(m)
            }
            w += 1
        }
        let base = Int(s) * lineSize
        (storeSeq + base + lo).update(repeating: seq, count: hi - lo)
        (stackOf + base + lo).update(repeating: stack, count: hi - lo)
        if nonTemporal {
            markPending(s)
            if ntEvicts {
                // The line is evicted with its other dirty bytes: they are on their way.
                let vias = viaSeq + base
                for w in 0..<wordsPerLine where dirty[w] != 0 {
                    var d = dirty[w]
                    counters[Self.cDirty] -= pop(d)
                    counters[Self.cFlushing] += pop(d)
                    flushing[w] |= d
                    dirty[w] = 0
                    while d != 0 {
                        vias[(w << 6) + d.trailingZeroBitCount] = seq
                        d &= d - 1
                    }
                }
            }
        }
    }

    /// Does any declared range, volatile or not, overlap the line?
    private func lineKind(_ line: UInt64) -> (pmem: Bool, volatileOnly: Bool) {
        let first = line << lineShift
        let last = first &+ UInt64(lineSize - 1)
        var any = false, persistent = false
        forEachPmemPiece(first, last) { _, _, r in
            any = true
            if !r.isVolatile { persistent = true }
        }
        return (any, any && !persistent)
    }

    /// clwb, clflushopt or clflush of the line containing `address`.
    func writeBack(_ address: UInt64, kind: EventKind, seq: UInt64) -> WriteBackOutcome {
        let line = address >> lineShift
        let s = slot(forLine: line, create: false)
        if s == nil {
            let k = lineKind(line)
            if !k.pmem { return .notPmem }
            if k.volatileOnly { return .volatile }
        }
        if domain == .eadr { return .eadr }
        guard let s else { return .redundant }
        let dirty = maskPointer(s, Self.dirtyMask)
        var any = false
        for w in 0..<wordsPerLine where dirty[w] != 0 { any = true }
        if !any { return .redundant }
        let immediate = kind == .clflush && !strictClflush
        let target = immediate ? (domain == .wpq ? Self.queuedMask : -1) : Self.flushingMask
        let vias = viaSeq + Int(s) * lineSize
        for w in 0..<wordsPerLine where dirty[w] != 0 {
            var d = dirty[w]
            let n = pop(d)
            counters[Self.cDirty] -= n
            dirty[w] = 0
            if target >= 0 {
                maskPointer(s, target)[w] |= d
                if target == Self.queuedMask { counters[Self.cQueued] += n } else { counters[Self.cFlushing] += n }
                while d != 0 {
                    vias[(w << 6) + d.trailingZeroBitCount] = seq
                    d &= d - 1
                }
            }
        }
        if target >= 0 {
            markPending(s)
        } else if isAllDurable(s) {
            if isPending[Int(s)] { removeFromPending(s) }
            release(s)
        }
        return .wroteBack
    }

    private func removeFromPending(_ s: Int32) {
        if let i = pending.firstIndex(of: s) { pending.remove(at: i) }
        isPending[Int(s)] = false
    }

    /// sfence, mfence or any other full barrier.
    func fence(seq: UInt64) {
        switch domain {
        case .adr:
            swap(&pending, &visiting)
            for s in visiting {
                isPending[Int(s)] = false
                let flushing = maskPointer(s, Self.flushingMask), wc = maskPointer(s, Self.wcMask)
                for w in 0..<wordsPerLine {
                    counters[Self.cFlushing] -= pop(flushing[w])
                    counters[Self.cWC] -= pop(wc[w])
                    flushing[w] = 0
                    wc[w] = 0
                }
                if isAllDurable(s) { release(s) }
            }
            visiting.removeAll(keepingCapacity: true)
        case .eadr:
            for s in pending { isPending[Int(s)] = false }
            pending.removeAll(keepingCapacity: true)
            while let s = live.last { release(s) }
            counters.update(repeating: 0, count: 4)
        case .wpq:
            swap(&pending, &visiting)
            for s in visiting {
                isPending[Int(s)] = false
                let flushing = maskPointer(s, Self.flushingMask), wc = maskPointer(s, Self.wcMask)
                let queued = maskPointer(s, Self.queuedMask), hinted = maskPointer(s, Self.hintedMask)
                let vias = viaSeq + Int(s) * lineSize
                for w in 0..<wordsPerLine {
                    // Hinted bytes reach the media; flushing and wc bytes reach the WPQ.
                    let h = hinted[w] & queued[w]
                    counters[Self.cQueued] -= pop(h)
                    queued[w] &= ~h
                    hinted[w] = 0
                    var arriving = flushing[w] | wc[w]
                    counters[Self.cFlushing] -= pop(flushing[w])
                    counters[Self.cWC] -= pop(wc[w])
                    counters[Self.cQueued] += pop(arriving)
                    queued[w] |= arriving
                    flushing[w] = 0
                    wc[w] = 0
                    while arriving != 0 {
                        vias[(w << 6) + arriving.trailingZeroBitCount] = seq
                        arriving &= arriving - 1
                    }
                }
                if isAllDurable(s) {
                    release(s)
                } else if hasPendingBytes(s) {
                    markPending(s)
                }
            }
            visiting.removeAll(keepingCapacity: true)
        }
    }

    /// A write to a flush-hint address (wpq): the bytes queued now go to the media at
    /// the next fence.
    func wpqFlush(seq: UInt64) {
        guard domain == .wpq else { return }
        for s in pending {
            let queued = maskPointer(s, Self.queuedMask), hinted = maskPointer(s, Self.hintedMask)
            for w in 0..<wordsPerLine { hinted[w] |= queued[w] }
        }
    }

    // MARK: Queries

    /// The at-risk bytes of [first, last] in the given states, as maximal runs of the
    /// same state, store, stack and via, in address order.
    /// Whether [first, last] holds any byte in the given states; no allocation, so the
    /// contracts of clean ops cost little.
    func hasRisk(_ first: UInt64, _ last: UInt64, states: StateSet) -> Bool {
        if live.isEmpty { return false }
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        let lineMask = UInt64(lineSize - 1)
        func check(_ line: UInt64, _ s: Int32) -> Bool {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            for w in (lo >> 6)...((hi - 1) >> 6) {
                var m: UInt64 = 0
                if states.contains(.dirty) { m |= maskPointer(s, Self.dirtyMask)[w] }
                if states.contains(.flushing) { m |= maskPointer(s, Self.flushingMask)[w] }
                if states.contains(.wc) { m |= maskPointer(s, Self.wcMask)[w] }
                if states.contains(.queued) { m |= maskPointer(s, Self.queuedMask)[w] }
                if m & Self.bits(max(lo, w << 6) - (w << 6), min(hi, (w << 6) + 64) - (w << 6)) != 0 { return true }
            }
            return false
        }
        if lastLineNumber - firstLine < UInt64(live.count) {
            var line = firstLine
            while true {
                if let s = table.find(line), check(line, s) { return true }
                if line == lastLineNumber { return false }
                line += 1
            }
        }
        for s in live {
            let line = lineOf[Int(s)]
            if line >= firstLine && line <= lastLineNumber && check(line, s) { return true }
        }
        return false
    }

    func risks(_ first: UInt64, _ last: UInt64, states: StateSet = .atRisk) -> [RiskRun] {
        var runs: [RiskRun] = []
        if !hasRisk(first, last, states: states) { return runs }
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        var slots: [(UInt64, Int32)] = []
        if lastLineNumber - firstLine < UInt64(live.count) {
            var line = firstLine
            while true {
                if let s = table.find(line) { slots.append((line, s)) }
                if line == lastLineNumber { break }
                line += 1
            }
        } else {
            for s in live {
                let line = lineOf[Int(s)]
                if line >= firstLine && line <= lastLineNumber { slots.append((line, s)) }
            }
            slots.sort { $0.0 < $1.0 }
        }
        let lineMask = UInt64(lineSize - 1)
        for (line, s) in slots {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            let base = Int(s) * lineSize
            for i in lo..<hi {
                let w = i >> 6, bit = UInt64(1) << UInt64(i & 63)
                let state: ByteState
                if maskPointer(s, Self.dirtyMask)[w] & bit != 0 {
                    guard states.contains(.dirty) else { continue }
                    state = .dirty
                } else if maskPointer(s, Self.flushingMask)[w] & bit != 0 {
                    guard states.contains(.flushing) else { continue }
                    state = .flushing
                } else if maskPointer(s, Self.wcMask)[w] & bit != 0 {
                    guard states.contains(.wc) else { continue }
                    state = .wc
                } else if maskPointer(s, Self.queuedMask)[w] & bit != 0 {
                    guard states.contains(.queued) else { continue }
                    state = .queued
                } else {
                    continue
                }
                let address = (line << lineShift) | UInt64(i)
                let store = storeSeq[base + i]
                let stack = stackOf[base + i]
                let nonTemporal = maskPointer(s, Self.ntMask)[w] & bit != 0
                let via: UInt64? = state == .flushing || state == .queued ? viaSeq[base + i] : nil
                if var r = runs.last, r.start &+ r.length == address, r.state == state, r.store == store,
                   r.stack == stack, r.via == via, r.nonTemporal == nonTemporal {
                    r.length += 1
                    runs[runs.count - 1] = r
                } else {
                    runs.append(RiskRun(start: address, length: 1, state: state, store: store, nonTemporal: nonTemporal,
                                        stack: stack, via: via))
                }
            }
        }
        return runs
    }

    /// The state of one byte (durable when untracked or not pmem).
    func state(of address: UInt64) -> ByteState {
        guard let s = table.find(address >> lineShift) else { return .durable }
        let i = Int(address & UInt64(lineSize - 1))
        let w = i >> 6, bit = UInt64(1) << UInt64(i & 63)
        if maskPointer(s, Self.dirtyMask)[w] & bit != 0 { return .dirty }
        if maskPointer(s, Self.flushingMask)[w] & bit != 0 { return .flushing }
        if maskPointer(s, Self.wcMask)[w] & bit != 0 { return .wc }
        if maskPointer(s, Self.queuedMask)[w] & bit != 0 { return .queued }
        return .durable
    }
}
