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
// `pmem` between events declares a range from that point on; `pmem-release` ends one and
// forgets its bytes' states (nobody can recover them any more); `mark` changes nothing.
//
// THREADS
//
// Events name the thread that ran them (0 when the trace names none). Caches are shared,
// ordering is per thread, as on x86:
//
//   write-back by T     the line's dirty bytes (whoever stored them) become flushing, and
//                       every flushing byte of the line is covered by T
//   ntstore by T        its bytes are wc, stored by T
//   fence by T          only flushing bytes covered by T and wc bytes stored by T move on
//                       (eadr: also dirty bytes whose newest store is T's; wpq: they
//                       become queued, and bytes queued at a flush hint of any thread
//                       reach the media at the next fence of any thread)
//   clflush             immediate, as with one thread
//
// An op belongs to the thread that began it: only that thread's stores can be out of its
// bounds, its drain point is that thread's first fence at or after its end, and ops of
// different threads may overlap.
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
// flush-hinted, newest-store-was-non-temporal), per byte a one-byte index (two for lines
// over 64 bytes) naming its newest store and one naming the write-back or fence that
// last moved it, and a small table of those events (number and stack): 16 entries in
// the line's slot, more in an overflow table only while the line's at-risk bytes name
// more distinct events. The table is compacted when it fills. About 460 bytes a live
// 64-byte line in all (it was 1.5 KB with an event number per byte). A line whose bytes
// are all durable is dropped, which is exactly what an untouched line is. Fences visit
// only the lines with flushing, wc or queued bytes. Stores to the line and range the
// previous store hit take a short path with no lookup.
//
// While one thread runs, the masks are all there is (the fast path). From the first
// event of a second thread on, a live line also carries a tag per thread that touched
// it: the at-risk bytes it stored last and the flushing bytes its write-backs cover; a
// fence by T visits only the lines on T's list.
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
    /// The declared ranges, sorted by base; `pmem` and `pmem-release` between events
    /// add and remove them.
    private(set) var ranges: [PmemRange]
    // The same ranges as plain numbers, for the per-event lookups (no String retains).
    private var rangeBase: UnsafeMutablePointer<UInt64>
    private var rangeLast: UnsafeMutablePointer<UInt64>     // inclusive
    private var rangeVolatile: UnsafeMutablePointer<Bool>
    private var rangeCount: Int
    private var rangeCapacity: Int
    private var lastRange = 0
    /// Stores with at least one byte outside every declared range.
    private(set) var storesOutside: UInt64 = 0

    // Slot storage, grown on demand. Masks are laid out [slot][mask][word].
    private static let maskCount = 6
    private static let dirtyMask = 0, flushingMask = 1, wcMask = 2, queuedMask = 3, hintedMask = 4, ntMask = 5
    private var capacity = 0
    private var masks: UnsafeMutablePointer<UInt64>
    // Per byte, an index into the slot's table of events: the newest store (for at-risk
    // bytes) and the event that moved the byte (for flushing and queued bytes). One byte
    // per index for lines of up to 64 bytes, two above. The table holds the event's
    // number and stack; `inlineRecords` entries per slot, more in an overflow table
    // when a line holds that many live ones. The table is compacted when full, so its
    // size follows the distinct events the line's at-risk bytes still name.
    private let wideIndex: Bool
    private var storeIdx: UnsafeMutableRawPointer
    private var viaIdx: UnsafeMutableRawPointer
    private static let inlineRecords = 16
    private var recSeq: UnsafeMutablePointer<UInt64>
    private var recStack: UnsafeMutablePointer<UInt32>
    private var recCount: UnsafeMutablePointer<Int32>
    /// Compact the slot's table when its count reaches this.
    private var recLimit: UnsafeMutablePointer<Int32>
    private var recExt: UnsafeMutablePointer<Int32>      // index into `overflow` (-1: none)
    private var overflow: [RecordOverflow] = []
    private var freeOverflow: [Int32] = []
    private var lineOf: UnsafeMutablePointer<UInt64>     // the slot's line number
    private var livePosition: UnsafeMutablePointer<Int32>
    private var isPending: UnsafeMutablePointer<Bool>
    private var tagHead: UnsafeMutablePointer<Int32>    // the slot's first thread tag (-1: none)
    // Free slots and live slots as plain buffers of `capacity` entries: no uniqueness
    // checks when a line comes and goes.
    private var freeSlots: UnsafeMutablePointer<Int32>
    private var freeCount = 0
    private var liveSlots: UnsafeMutablePointer<Int32>
    private var liveCount = 0
    private var slotsUsed: Int32 = 0
    private var table = LineTable()
    /// Slots in use, dense, for whole-model walks.
    var live: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(start: liveSlots, count: liveCount) }
    /// One thread: slots with flushing, wc or queued bytes, what a fence or wpqflush must
    /// visit. Several threads: slots with queued bytes (the per-thread lists hold the rest).
    private var pending: [Int32] = []
    private var visiting: [Int32] = []
    private var lastLine: UInt64 = .max
    private var lastSlot: Int32 = -1
    /// The fast path's cache: the bounds of the last non-volatile range a store hit
    /// (empty when lo > hi), and whether stores may take the fast path at all (lines of
    /// at most 64 bytes, one thread, no counts, no --nt-evicts).
    private var hotLo: UInt64 = 1
    private var hotHi: UInt64 = 0
    private var fastStores = false

    // Threads. While every event comes from one thread (`soleThread`) the masks say all
    // there is. From the first event of a second thread on (`multi`), each live line
    // also has a tag per thread that touched it: `owned` (at-risk bytes whose newest
    // store is the thread's) and `covered` (flushing bytes a write-back of the thread
    // covers). A fence by T visits only the lines in T's pending list.
    private var soleThread: UInt32 = 0
    private(set) var multi = false
    /// The thread of the events being applied.
    private(set) var thread: UInt32 = 0
    private var tagThread: [UInt32] = []
    private var tagSlot: [Int32] = []
    private var tagNext: [Int32] = []
    private var tagPending: [Bool] = []
    private var tagMasks: [UInt64] = []   // per tag: owned words, then covered words
    private var tagFree: [Int32] = []
    /// Per thread: slots where its tag may have covered flushing or owned wc bytes (eadr:
    /// also dirty ones). May hold stale entries; a tag's `pending` flag is the truth.
    private var pendingBy: [UInt32: [Int32]] = [:]

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
        rangeCapacity = max(4, rangeCount)
        rangeBase = .allocate(capacity: rangeCapacity)
        rangeLast = .allocate(capacity: rangeCapacity)
        rangeVolatile = .allocate(capacity: rangeCapacity)
        for (i, r) in self.ranges.enumerated() {
            rangeBase[i] = r.base
            rangeLast[i] = r.base &+ (r.length - 1)
            rangeVolatile[i] = r.isVolatile
        }
        counters = .allocate(capacity: 4)
        counters.initialize(repeating: 0, count: 4)
        fastStores = wordsPerLine == 1 && !counting && !ntEvicts
        masks = .allocate(capacity: 0)
        wideIndex = lineSize > 64
        storeIdx = .allocate(byteCount: 0, alignment: 8)
        viaIdx = .allocate(byteCount: 0, alignment: 8)
        recSeq = .allocate(capacity: 0)
        recStack = .allocate(capacity: 0)
        recCount = .allocate(capacity: 0)
        recLimit = .allocate(capacity: 0)
        recExt = .allocate(capacity: 0)
        lineOf = .allocate(capacity: 0)
        livePosition = .allocate(capacity: 0)
        isPending = .allocate(capacity: 0)
        tagHead = .allocate(capacity: 0)
        freeSlots = .allocate(capacity: 0)
        liveSlots = .allocate(capacity: 0)
        growSlots(to: 64)
    }

    deinit {
        rangeBase.deallocate()
        rangeLast.deallocate()
        rangeVolatile.deallocate()
        counters.deallocate()
        masks.deallocate()
        storeIdx.deallocate()
        viaIdx.deallocate()
        recSeq.deallocate()
        recStack.deallocate()
        recCount.deallocate()
        recLimit.deallocate()
        recExt.deallocate()
        lineOf.deallocate()
        livePosition.deallocate()
        isPending.deallocate()
        tagHead.deallocate()
        freeSlots.deallocate()
        liveSlots.deallocate()
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
        func growRaw(_ p: inout UnsafeMutableRawPointer) {
            let per = lineSize * (wideIndex ? 2 : 1)
            let q = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * per, alignment: 8)
            q.initializeMemory(as: UInt8.self, repeating: 0, count: newCapacity * per)
            if capacity > 0 { q.copyMemory(from: p, byteCount: capacity * per) }
            p.deallocate()
            p = q
        }
        growRaw(&storeIdx)
        growRaw(&viaIdx)
        grow(&recSeq, Self.inlineRecords, 0)
        grow(&recStack, Self.inlineRecords, 0)
        grow(&recCount, 1, 0)
        grow(&recLimit, 1, Int32(Self.inlineRecords))
        grow(&recExt, 1, -1)
        grow(&lineOf, 1, 0)
        grow(&livePosition, 1, -1)
        grow(&isPending, 1, false)
        grow(&tagHead, 1, -1)
        grow(&freeSlots, 1, -1)
        grow(&liveSlots, 1, -1)
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
        let lo = firstRange(after: address)
        guard lo > 0, address <= rangeLast[lo - 1] else { return nil }
        lastRange = lo - 1
        return lo - 1
    }

    /// The index of the first range whose base is above `address`.
    private func firstRange(after address: UInt64) -> Int {
        var lo = 0, hi = rangeCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if rangeBase[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The index of the first range that ends at or after `address`.
    private func firstRange(endingFrom address: UInt64) -> Int {
        let i = firstRange(after: address)
        return i > 0 && rangeLast[i - 1] >= address ? i - 1 : i
    }

    /// Calls `body` with each piece of [first, last] (inclusive) that lies in a declared
    /// range, in address order, with that range.
    func forEachPmemPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64, PmemRange) -> Void) {
        var i = firstRange(endingFrom: first)
        while i < rangeCount && rangeBase[i] <= last {
            body(max(first, rangeBase[i]), min(last, rangeLast[i]), ranges[i])
            i += 1
        }
    }

    /// Calls `body` with the pieces of [first, last] that no declared range covers.
    func forEachUntrackedPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64) -> Void) {
        var cursor = first
        var i = firstRange(endingFrom: first)
        while i < rangeCount && rangeBase[i] <= last {
            if rangeBase[i] > cursor { body(cursor, rangeBase[i] - 1) }
            if rangeLast[i] >= last { return }
            cursor = rangeLast[i] + 1
            i += 1
        }
        body(cursor, last)
    }

    /// `pmem` between events: a range tracked from here on. The reader has checked that
    /// it overlaps no range tracked now.
    func addRange(_ r: PmemRange) {
        guard r.length > 0 else { return }
        if rangeCount == rangeCapacity {
            let c = rangeCapacity * 2
            func grow<T>(_ p: inout UnsafeMutablePointer<T>) {
                let q = UnsafeMutablePointer<T>.allocate(capacity: c)
                q.moveInitialize(from: p, count: rangeCount)
                p.deallocate()
                p = q
            }
            grow(&rangeBase)
            grow(&rangeLast)
            grow(&rangeVolatile)
            rangeCapacity = c
        }
        let i = firstRange(after: r.base)
        let tail = rangeCount - i
        (rangeBase + i + 1).moveInitialize(from: rangeBase + i, count: tail)
        (rangeLast + i + 1).moveInitialize(from: rangeLast + i, count: tail)
        (rangeVolatile + i + 1).moveInitialize(from: rangeVolatile + i, count: tail)
        rangeBase[i] = r.base
        rangeLast[i] = r.base &+ (r.length - 1)
        rangeVolatile[i] = r.isVolatile
        ranges.insert(r, at: i)
        rangeCount += 1
        lastRange = i
    }

    /// `pmem-release BASE LEN`: the range declared with exactly this base and length
    /// stops being tracked and its bytes' states are dropped. False when no such range.
    @discardableResult
    func removeRange(base: UInt64, length: UInt64) -> Bool {
        let i = firstRange(after: base) - 1
        guard i >= 0, rangeBase[i] == base, ranges[i].length == length else { return false }
        dropStates(base, rangeLast[i])
        hotLo = 1
        hotHi = 0
        let tail = rangeCount - i - 1
        (rangeBase + i).moveInitialize(from: rangeBase + i + 1, count: tail)
        (rangeLast + i).moveInitialize(from: rangeLast + i + 1, count: tail)
        (rangeVolatile + i).moveInitialize(from: rangeVolatile + i + 1, count: tail)
        ranges.remove(at: i)
        rangeCount -= 1
        lastRange = 0
        return true
    }

    /// Forgets the state of every byte of [first, last].
    private func dropStates(_ first: UInt64, _ last: UInt64) {
        let lineMask = UInt64(lineSize - 1)
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        for (line, s) in slots(firstLine, lastLineNumber) {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            forEachWord(lo, hi) { w, m in
                for k in 0..<Self.maskCount {
                    let p = maskPointer(s, k)
                    if k <= Self.queuedMask { counters[k] -= pop(p[w] & m) }
                    p[w] &= ~m
                }
                var t = tagHead[Int(s)]
                while t >= 0 {
                    tagMasks[tagOwned(t) + w] &= ~m
                    tagMasks[tagCovered(t) + w] &= ~m
                    t = tagNext[Int(t)]
                }
            }
            if isAllDurable(s) { release(s) }
        }
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
        if freeCount > 0 {
            freeCount &-= 1
            s = freeSlots[freeCount]
        } else {
            if Int(slotsUsed) == capacity { growSlots(to: capacity * 2) }
            s = slotsUsed
            slotsUsed += 1
        }
        table.insert(line, s)
        lineOf[Int(s)] = line
        livePosition[Int(s)] = Int32(live.count)
        liveSlots[liveCount] = s
        liveCount &+= 1
        if live.count > peakLive { peakLive = live.count }
        lastLine = line
        lastSlot = s
        return s
    }

    /// The live slots of lines firstLine...lastLine, in line order.
    private func slots(_ firstLine: UInt64, _ lastLine: UInt64) -> [(UInt64, Int32)] {
        var out: [(UInt64, Int32)] = []
        if live.isEmpty { return out }
        if lastLine - firstLine < UInt64(live.count) {
            var line = firstLine
            while true {
                if let s = table.find(line) { out.append((line, s)) }
                if line == lastLine { break }
                line += 1
            }
        } else {
            for s in live {
                let line = lineOf[Int(s)]
                if line >= firstLine && line <= lastLine { out.append((line, s)) }
            }
            out.sort { $0.0 < $1.0 }
        }
        return out
    }

    /// Drops a slot whose bytes are all durable.
    private func release(_ s: Int32) {
        if isPending[Int(s)] { removeFromPending(s) }
        let line = lineOf[Int(s)]
        table.remove(line)
        if lastLine == line { lastLine = .max; lastSlot = -1 }
        let p = Int(livePosition[Int(s)])
        liveCount &-= 1
        let moved = liveSlots[liveCount]
        if moved != s {
            liveSlots[p] = moved
            livePosition[Int(moved)] = Int32(p)
        }
        livePosition[Int(s)] = -1
        let m = masks + Int(s) * Self.maskCount * wordsPerLine
        m.update(repeating: 0, count: Self.maskCount * wordsPerLine)
        if tagHead[Int(s)] >= 0 { freeTags(s) }
        recCount[Int(s)] = 0
        recLimit[Int(s)] = Int32(Self.inlineRecords)
        if recExt[Int(s)] >= 0 {
            overflow[Int(recExt[Int(s)])].removeAll()
            freeOverflow.append(recExt[Int(s)])
            recExt[Int(s)] = -1
        }
        freeSlots[freeCount] = s
        freeCount &+= 1
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

    private func hasQueuedBytes(_ s: Int32) -> Bool {
        for w in 0..<wordsPerLine where maskPointer(s, Self.queuedMask)[w] != 0 { return true }
        return false
    }

    @inline(__always)
    private func markPending(_ s: Int32) {
        if !isPending[Int(s)] {
            isPending[Int(s)] = true
            pending.append(s)
        }
    }

    private func removeFromPending(_ s: Int32) {
        if let i = pending.firstIndex(of: s) { pending.remove(at: i) }
        isPending[Int(s)] = false
    }

    @inline(__always)
    private static func bits(_ lo: Int, _ hi: Int) -> UInt64 {
        // Bits lo..<hi of a word, 0 <= lo < hi <= 64.
        (UInt64.max &>> UInt64(truncatingIfNeeded: 64 &- (hi &- lo))) &<< UInt64(truncatingIfNeeded: lo)
    }

    /// Calls `body` with each word of bytes lo..<hi of a line and the mask of those bytes in it.
    @inline(__always)
    private func forEachWord(_ lo: Int, _ hi: Int, _ body: (Int, UInt64) -> Void) {
        var w = lo >> 6
        let lastWord = (hi - 1) >> 6
        while w <= lastWord {
            body(w, Self.bits(max(lo, w << 6) - (w << 6), min(hi, (w << 6) + 64) - (w << 6)))
            w += 1
        }
    }

    @inline(__always)
    private func pop(_ x: UInt64) -> UInt64 { counting ? UInt64(x.nonzeroBitCount) : 0 }

    // MARK: Event records

    @inline(__always)
    private func setStore(_ s: Int32, _ lo: Int, _ hi: Int, _ r: Int) {
        if wideIndex {
            (storeIdx.assumingMemoryBound(to: UInt16.self) + Int(s) * lineSize + lo).update(repeating: UInt16(r), count: hi - lo)
            return
        }
        // Eight indices at a time: stores are mostly a few bytes, too short for memset.
        let p = storeIdx + (Int(s) &* lineSize &+ lo)
        let n = hi &- lo
        let pattern = UInt64(truncatingIfNeeded: r) &* 0x0101_0101_0101_0101
        if n == 8 {
            p.storeBytes(of: pattern, as: UInt64.self)
            return
        }
        var i = 0
        while i &+ 8 <= n {
            p.storeBytes(of: pattern, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        while i < n {
            p.storeBytes(of: UInt8(truncatingIfNeeded: r), toByteOffset: i, as: UInt8.self)
            i &+= 1
        }
    }

    /// The bytes of word w set in `bytes` were moved by event record r.
    @inline(__always)
    private func setVia(_ s: Int32, _ w: Int, _ bytes: UInt64, _ r: Int) {
        var b = bytes
        let base = Int(s) * lineSize + (w << 6)
        if wideIndex {
            let p = viaIdx.assumingMemoryBound(to: UInt16.self) + base
            while b != 0 {
                p[b.trailingZeroBitCount] = UInt16(r)
                b &= b - 1
            }
        } else {
            let p = viaIdx.assumingMemoryBound(to: UInt8.self) + base
            while b != 0 {
                p[b.trailingZeroBitCount] = UInt8(r)
                b &= b - 1
            }
        }
    }

    @inline(__always)
    private func storeIndex(_ s: Int32, _ i: Int) -> Int {
        wideIndex ? Int(storeIdx.assumingMemoryBound(to: UInt16.self)[Int(s) * lineSize + i])
            : Int(storeIdx.assumingMemoryBound(to: UInt8.self)[Int(s) * lineSize + i])
    }

    @inline(__always)
    private func viaIndex(_ s: Int32, _ i: Int) -> Int {
        wideIndex ? Int(viaIdx.assumingMemoryBound(to: UInt16.self)[Int(s) * lineSize + i])
            : Int(viaIdx.assumingMemoryBound(to: UInt8.self)[Int(s) * lineSize + i])
    }

    /// The event number and stack of record r of slot s.
    private func record(_ s: Int32, _ r: Int) -> (seq: UInt64, stack: UInt32) {
        if r < Self.inlineRecords {
            let k = Int(s) * Self.inlineRecords + r
            return (recSeq[k], recStack[k])
        }
        let o = overflow[Int(recExt[Int(s)])]
        return (o.seq[r - Self.inlineRecords], o.stack[r - Self.inlineRecords])
    }

    /// Adds an event to the slot's table and returns its index.
    @inline(__always)
    private func addRecord(_ s: Int32, seq: UInt64, stack: UInt32) -> Int {
        let n = Int(recCount[Int(s)])
        if n < Self.inlineRecords && n < Int(recLimit[Int(s)]) {
            let k = Int(s) &* Self.inlineRecords &+ n
            recSeq[k] = seq
            recStack[k] = stack
            recCount[Int(s)] = Int32(truncatingIfNeeded: n &+ 1)
            return n
        }
        return addRecordSlowly(s, seq: seq, stack: stack)
    }

    private func addRecordSlowly(_ s: Int32, seq: UInt64, stack: UInt32) -> Int {
        if recCount[Int(s)] >= recLimit[Int(s)] {
            compactRecords(s)
            // Room for as many again as are live, so compaction stays rare, within what
            // the index width can name.
            let live = Int(recCount[Int(s)])
            recLimit[Int(s)] = Int32(min(max(Self.inlineRecords, 2 * live + 1), wideIndex ? 65536 : 256))
        }
        let n = Int(recCount[Int(s)])
        if n < Self.inlineRecords { return addRecord(s, seq: seq, stack: stack) }
        if recExt[Int(s)] < 0 {
            if let f = freeOverflow.popLast() {
                recExt[Int(s)] = f
            } else {
                recExt[Int(s)] = Int32(overflow.count)
                overflow.append(RecordOverflow())
            }
        }
        let o = overflow[Int(recExt[Int(s)])]
        o.seq.append(seq)
        o.stack.append(stack)
        recCount[Int(s)] = Int32(n + 1)
        return n
    }

    /// Keeps only the records that at-risk bytes still name, renumbered.
    private func compactRecords(_ s: Int32) {
        let n = Int(recCount[Int(s)])
        var remap = [Int32](repeating: -1, count: n)
        var kept: [(UInt64, UInt32)] = []
        func keep(_ r: Int) -> Int {
            if remap[r] < 0 {
                remap[r] = Int32(kept.count)
                kept.append(record(s, r))
            }
            return Int(remap[r])
        }
        for w in 0..<wordsPerLine {
            let risky = maskPointer(s, Self.dirtyMask)[w] | maskPointer(s, Self.flushingMask)[w]
                | maskPointer(s, Self.wcMask)[w] | maskPointer(s, Self.queuedMask)[w]
            let moved = maskPointer(s, Self.flushingMask)[w] | maskPointer(s, Self.queuedMask)[w]
            var b = risky
            while b != 0 {
                let i = (w << 6) + b.trailingZeroBitCount
                let r = keep(storeIndex(s, i))
                setStore(s, i, i + 1, r)
                b &= b - 1
            }
            b = moved
            while b != 0 {
                let bit = b & (0 &- b)
                let i = (w << 6) + b.trailingZeroBitCount
                setVia(s, w, bit, keep(viaIndex(s, i)))
                b &= b - 1
            }
        }
        let base = Int(s) * Self.inlineRecords
        for (k, r) in kept.prefix(Self.inlineRecords).enumerated() {
            recSeq[base + k] = r.0
            recStack[base + k] = r.1
        }
        if recExt[Int(s)] >= 0 {
            let o = overflow[Int(recExt[Int(s)])]
            o.removeAll()
            for r in kept.dropFirst(Self.inlineRecords) {
                o.seq.append(r.0)
                o.stack.append(r.1)
            }
        }
        recCount[Int(s)] = Int32(kept.count)
    }

    // MARK: Thread tags

    /// The thread of the events that follow.
    func setThread(_ t: UInt32) {
        thread = t
        guard !multi, t != soleThread else { return }
        if live.isEmpty { soleThread = t } else { enterMulti() }
    }

    /// A second thread appeared: every at-risk byte so far is the sole thread's.
    private func enterMulti() {
        multi = true
        fastStores = false
        for s in live {
            let tg = makeTag(s, soleThread)
            var needsFence = false
            for w in 0..<wordsPerLine {
                let flushing = maskPointer(s, Self.flushingMask)[w], wc = maskPointer(s, Self.wcMask)[w]
                let dirty = maskPointer(s, Self.dirtyMask)[w]
                tagMasks[tagOwned(tg) + w] = dirty | wc | flushing
                tagMasks[tagCovered(tg) + w] = flushing
                if flushing | wc != 0 || (domain == .eadr && dirty != 0) { needsFence = true }
            }
            if needsFence { markThreadPending(tg) }
        }
        // The shared list keeps only the lines with queued bytes.
        for s in pending { isPending[Int(s)] = false }
        let old = pending
        pending.removeAll(keepingCapacity: true)
        for s in old where hasQueuedBytes(s) { markPending(s) }
    }

    @inline(__always) private func tagOwned(_ t: Int32) -> Int { Int(t) * 2 * wordsPerLine }
    @inline(__always) private func tagCovered(_ t: Int32) -> Int { Int(t) * 2 * wordsPerLine + wordsPerLine }

    private func tag(_ s: Int32, _ thread: UInt32) -> Int32? {
        var t = tagHead[Int(s)]
        while t >= 0 {
            if tagThread[Int(t)] == thread { return t }
            t = tagNext[Int(t)]
        }
        return nil
    }

    private func makeTag(_ s: Int32, _ thread: UInt32) -> Int32 {
        if let t = tag(s, thread) { return t }
        let t: Int32
        if let f = tagFree.popLast() {
            t = f
            tagThread[Int(t)] = thread
            tagSlot[Int(t)] = s
            tagPending[Int(t)] = false
            for w in 0..<(2 * wordsPerLine) { tagMasks[tagOwned(t) + w] = 0 }
        } else {
            t = Int32(tagThread.count)
            tagThread.append(thread)
            tagSlot.append(s)
            tagNext.append(-1)
            tagPending.append(false)
            tagMasks.append(contentsOf: repeatElement(0, count: 2 * wordsPerLine))
        }
        tagNext[Int(t)] = tagHead[Int(s)]
        tagHead[Int(s)] = t
        return t
    }

    private func freeTags(_ s: Int32) {
        var t = tagHead[Int(s)]
        while t >= 0 {
            tagPending[Int(t)] = false
            tagSlot[Int(t)] = -1
            tagFree.append(t)
            t = tagNext[Int(t)]
        }
        tagHead[Int(s)] = -1
    }

    private func markThreadPending(_ t: Int32) {
        guard !tagPending[Int(t)] else { return }
        tagPending[Int(t)] = true
        let thread = tagThread[Int(t)]
        pendingBy[thread, default: []].append(tagSlot[Int(t)])
        if let n = pendingBy[thread]?.count, n > 64 && n > 2 * live.count {
            // Drop stale entries (lines released or fenced since) so the list follows
            // what is at risk.
            var seen = Set<Int32>()
            pendingBy[thread] = pendingBy[thread]!.filter { s in
                guard let tg = tag(s, thread), tagPending[Int(tg)] else { return false }
                return seen.insert(s).inserted
            }
        }
    }

    /// A store by `thread` to bytes lo..<hi of slot s (masks already updated): the
    /// bytes' newest store is the thread's.
    private func tagStore(_ s: Int32, _ lo: Int, _ hi: Int, nonTemporal: Bool) {
        let mine = makeTag(s, thread)
        forEachWord(lo, hi) { w, m in
            var t = tagHead[Int(s)]
            while t >= 0 {
                tagMasks[tagOwned(t) + w] &= ~m
                tagMasks[tagCovered(t) + w] &= ~m
                t = tagNext[Int(t)]
            }
            tagMasks[tagOwned(mine) + w] |= m
        }
        if nonTemporal || domain == .eadr { markThreadPending(mine) }
    }

    /// A write-back by `thread`: it covers every flushing byte of the line.
    private func tagWriteBack(_ s: Int32) {
        var any = false
        for w in 0..<wordsPerLine where maskPointer(s, Self.flushingMask)[w] != 0 { any = true }
        guard any else { return }
        let mine = makeTag(s, thread)
        for w in 0..<wordsPerLine { tagMasks[tagCovered(mine) + w] |= maskPointer(s, Self.flushingMask)[w] }
        markThreadPending(mine)
    }

    // MARK: Events

    /// A cached or non-temporal store of `size` bytes. Only the parts in non-volatile
    /// declared pmem are tracked.
    @inline(__always)
    func store(_ address: UInt64, _ size: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let last = address &+ (size &- 1)
        let line = address &>> lineShift
        if fastStores && line == lastLine && last &>> lineShift == line && address >= hotLo && last <= hotHi {
            storeInLine(lastSlot, address, last, seq: seq, stack: stack, nonTemporal: nonTemporal)
            return
        }
        storeSlowly(address, last, size, seq: seq, stack: stack, nonTemporal: nonTemporal)
    }

    /// The fast path: a store within one line of at most 64 bytes, one thread, no counts.
    @inline(__always)
    private func storeInLine(_ s: Int32, _ first: UInt64, _ last: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let lineMask = UInt64(truncatingIfNeeded: lineSize &- 1)
        let lo = Int(truncatingIfNeeded: first & lineMask), hi = Int(truncatingIfNeeded: last & lineMask) &+ 1
        // The record first: compacting the table reads the masks as they were.
        let r = addRecord(s, seq: seq, stack: stack)
        let m = Self.bits(lo, hi)
        let p = masks + Int(s) &* Self.maskCount
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
        setStore(s, lo, hi, r)
    }

    @inline(never)
    private func storeSlowly(_ address: UInt64, _ last: UInt64, _ size: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        if let r = rangeIndex(containing: address), last <= rangeLast[r] {
            if !rangeVolatile[r] {
                hotLo = rangeBase[r]
                hotHi = rangeLast[r]
                storeTracked(address, last, seq: seq, stack: stack, nonTemporal: nonTemporal)
            }
        } else {
            var covered: UInt64 = 0
            forEachPmemPiece(address, last) { first, pieceLast, range in
                covered &+= pieceLast - first + 1
                if !range.isVolatile { storeTracked(first, pieceLast, seq: seq, stack: stack, nonTemporal: nonTemporal) }
            }
            if covered != size { storesOutside += 1 }
        }
        if nonTemporal && ntEvicts && !live.isEmpty {
            // Each line the store touches is evicted, whatever range the store lies in.
            var line = address >> lineShift
            while true {
                if let s = slot(forLine: line, create: false) { evict(s, seq: seq) }
                if line == last >> lineShift { break }
                line += 1
            }
        }
    }

    /// --nt-evicts: a non-temporal store evicts its line with the line's dirty bytes,
    /// which become flushing (covered by the storing thread).
    private func evict(_ s: Int32, seq: UInt64) {
        let dirty = maskPointer(s, Self.dirtyMask), flushing = maskPointer(s, Self.flushingMask)
        var any = false
        for w in 0..<wordsPerLine where dirty[w] != 0 { any = true }
        guard any else { return }
        let via = addRecord(s, seq: seq, stack: 0)
        for w in 0..<wordsPerLine where dirty[w] != 0 {
            let d = dirty[w]
            counters[Self.cDirty] -= pop(d)
            counters[Self.cFlushing] += pop(d)
            flushing[w] |= d
            dirty[w] = 0
            if multi { tagMasks[tagCovered(makeTag(s, thread)) + w] |= d }
            setVia(s, w, d, via)
        }
        if multi { markThreadPending(makeTag(s, thread)) } else { markPending(s) }
    }

    @inline(__always)
    private func storeTracked(_ first: UInt64, _ last: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        if fastStores && first >> lineShift == last >> lineShift {
            // The common case: one line of at most 64 bytes, one word per mask, one thread.
            storeInLine(slot(forLine: first >> lineShift, create: true)!, first, last, seq: seq, stack: stack,
                        nonTemporal: nonTemporal)
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

    private func storeLine(_ s: Int32, _ lo: Int, _ hi: Int, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let dirty = maskPointer(s, Self.dirtyMask), flushing = maskPointer(s, Self.flushingMask)
        let wc = maskPointer(s, Self.wcMask), queued = maskPointer(s, Self.queuedMask)
        let hinted = maskPointer(s, Self.hintedMask), nt = maskPointer(s, Self.ntMask)
        let r = addRecord(s, seq: seq, stack: stack)
        forEachWord(lo, hi) { w, m in
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
        }
        setStore(s, lo, hi, r)
        if nonTemporal && !multi { markPending(s) }
        if multi { tagStore(s, lo, hi, nonTemporal: nonTemporal) }
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
        if !any {
            // Nothing to write back, but in a multithreaded trace the write-back still
            // covers the line's flushing bytes for this thread's next fence.
            if multi { tagWriteBack(s) }
            return .redundant
        }
        let immediate = kind == .clflush && !strictClflush
        let target = immediate ? (domain == .wpq ? Self.queuedMask : -1) : Self.flushingMask
        let via = target >= 0 ? addRecord(s, seq: seq, stack: 0) : 0
        for w in 0..<wordsPerLine where dirty[w] != 0 {
            let d = dirty[w]
            let n = pop(d)
            counters[Self.cDirty] -= n
            dirty[w] = 0
            if target >= 0 {
                maskPointer(s, target)[w] |= d
                if target == Self.queuedMask { counters[Self.cQueued] += n } else { counters[Self.cFlushing] += n }
                setVia(s, w, d, via)
            }
        }
        if multi {
            tagWriteBack(s)
            if target == Self.queuedMask { markPending(s) }
            if target < 0 && isAllDurable(s) { release(s) }
            return .wroteBack
        }
        if target >= 0 {
            markPending(s)
        } else if isAllDurable(s) {
            release(s)
        }
        return .wroteBack
    }

    /// sfence, mfence or any other full barrier, by the current thread.
    func fence(seq: UInt64) {
        if multi {
            fenceByThread(seq: seq)
            return
        }
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
                var arrives = false
                for w in 0..<wordsPerLine where flushing[w] | wc[w] != 0 { arrives = true }
                let via = arrives ? addRecord(s, seq: seq, stack: 0) : 0
                for w in 0..<wordsPerLine {
                    // Hinted bytes reach the media; flushing and wc bytes reach the WPQ.
                    let h = hinted[w] & queued[w]
                    counters[Self.cQueued] -= pop(h)
                    queued[w] &= ~h
                    hinted[w] = 0
                    let arriving = flushing[w] | wc[w]
                    counters[Self.cFlushing] -= pop(flushing[w])
                    counters[Self.cWC] -= pop(wc[w])
                    counters[Self.cQueued] += pop(arriving)
                    queued[w] |= arriving
                    flushing[w] = 0
                    wc[w] = 0
                    if arriving != 0 { setVia(s, w, arriving, via) }
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

    /// A fence by `thread` when several threads ran: only the flushing bytes its
    /// write-backs covered and the wc bytes it stored (eadr: and the dirty bytes it
    /// stored last) move on; in wpq, bytes queued when a flush hint was written (by any
    /// thread) reach the media.
    private func fenceByThread(seq: UInt64) {
        if domain == .wpq {
            swap(&pending, &visiting)
            for s in visiting {
                isPending[Int(s)] = false
                let queued = maskPointer(s, Self.queuedMask), hinted = maskPointer(s, Self.hintedMask)
                for w in 0..<wordsPerLine {
                    let h = hinted[w] & queued[w]
                    counters[Self.cQueued] -= pop(h)
                    queued[w] &= ~h
                    hinted[w] = 0
                }
                if isAllDurable(s) {
                    release(s)
                } else if hasQueuedBytes(s) {
                    markPending(s)
                }
            }
            visiting.removeAll(keepingCapacity: true)
        }
        guard let list = pendingBy.removeValue(forKey: thread) else { return }
        for s in list {
            guard let tg = tag(s, thread), tagPending[Int(tg)] else { continue }
            tagPending[Int(tg)] = false
            let dirty = maskPointer(s, Self.dirtyMask), flushing = maskPointer(s, Self.flushingMask)
            let wc = maskPointer(s, Self.wcMask), queued = maskPointer(s, Self.queuedMask)
            var via = 0
            if domain == .wpq {
                var arrives = false
                for w in 0..<wordsPerLine {
                    let owned = tagMasks[tagOwned(tg) + w], covered = tagMasks[tagCovered(tg) + w]
                    if flushing[w] & covered | wc[w] & owned != 0 { arrives = true }
                }
                if arrives { via = addRecord(s, seq: seq, stack: 0) }
            }
            var anyQueued = false
            for w in 0..<wordsPerLine {
                let owned = tagMasks[tagOwned(tg) + w], covered = tagMasks[tagCovered(tg) + w]
                let f = flushing[w] & covered, c = wc[w] & owned, d = domain == .eadr ? dirty[w] & owned : 0
                let moving = f | c | d
                if moving == 0 { continue }
                counters[Self.cFlushing] -= pop(f)
                counters[Self.cWC] -= pop(c)
                counters[Self.cDirty] -= pop(d)
                flushing[w] &= ~moving
                wc[w] &= ~moving
                dirty[w] &= ~moving
                if domain == .wpq {
                    queued[w] |= moving
                    counters[Self.cQueued] += pop(moving)
                    anyQueued = true
                    setVia(s, w, moving, via)
                }
                var t = tagHead[Int(s)]
                while t >= 0 {
                    tagMasks[tagCovered(t) + w] &= ~moving
                    if domain != .wpq { tagMasks[tagOwned(t) + w] &= ~moving }
                    t = tagNext[Int(t)]
                }
            }
            if anyQueued { markPending(s) }
            if isAllDurable(s) { release(s) }
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
                let (store, stack) = record(s, storeIndex(s, i))
                let nonTemporal = maskPointer(s, Self.ntMask)[w] & bit != 0
                let via: UInt64? = state == .flushing || state == .queued ? record(s, viaIndex(s, i)).seq : nil
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

/// The event records of a line that holds more live ones than fit in its slot.
final class RecordOverflow {
    var seq: [UInt64] = []
    var stack: [UInt32] = []
    func removeAll() {
        seq.removeAll(keepingCapacity: true)
        stack.removeAll(keepingCapacity: true)
    }
}
