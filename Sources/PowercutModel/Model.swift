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
// HOW IT IS STORED (the slots: Model+Slots.swift; event tables: Model+Records.swift;
// thread tags: Model+Threads.swift; ranges: Model+Ranges.swift; queries: Model+Queries.swift;
// deferred runs: Model+DeferredRuns.swift)
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
// previous store hit take a short path with no lookup; a run of back-to-back stores the
// binary reader coalesced (`Event.runLength`) goes into each line it covers at once, with
// a table entry per store, exactly as the stores one by one would leave it. With one
// thread in adr or eadr, the lines a non-temporal run fills whole, where no line had
// state, wait as one record (Model+DeferredRuns.swift): the next fence drops them, and
// anything that needs one of them first gets the run written into its lines.
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

/// The per-byte state machine of the persistence model (Docs/model.md) over sparse cache lines.
final class PersistenceModel {
    let domain: Domain
    let ntEvicts: Bool
    let strictClflush: Bool
    let lineSize: Int
    let lineShift: UInt64
    let wordsPerLine: Int
    /// The declared ranges, sorted by base; `pmem` and `pmem-release` between events
    /// add and remove them.
    var ranges: [PmemRange]
    // The same ranges as plain numbers, for the per-event lookups (no String retains).
    var rangeBase: UnsafeMutablePointer<UInt64>
    var rangeLast: UnsafeMutablePointer<UInt64>     // inclusive
    var rangeVolatile: UnsafeMutablePointer<Bool>
    var rangeCount: Int
    var rangeCapacity: Int
    var lastRange = 0
    /// Stores with at least one byte outside every declared range.
    var storesOutside: UInt64 = 0

    // Slot storage, grown on demand. Masks are laid out [slot][mask][word].
    static let maskCount = 6
    static let dirtyMask = 0, flushingMask = 1, wcMask = 2, queuedMask = 3, hintedMask = 4, ntMask = 5
    var capacity = 0
    var masks: UnsafeMutablePointer<UInt64>
    // Per byte, an index into the slot's table of events: the newest store (for at-risk
    // bytes) and the event that moved the byte (for flushing and queued bytes). One byte
    // per index for lines of up to 64 bytes, two above. The table holds the event's
    // number and stack; `inlineRecords` entries per slot, more in an overflow table
    // when a line holds that many live ones. The table is compacted when full, so its
    // size follows the distinct events the line's at-risk bytes still name.
    let wideIndex: Bool
    var storeIdx: UnsafeMutableRawPointer
    var viaIdx: UnsafeMutableRawPointer
    static let inlineRecords = 16
    var recSeq: UnsafeMutablePointer<UInt64>
    var recStack: UnsafeMutablePointer<UInt32>
    var recCount: UnsafeMutablePointer<Int32>
    /// Compact the slot's table when its count reaches this.
    var recLimit: UnsafeMutablePointer<Int32>
    var recExt: UnsafeMutablePointer<Int32>      // index into `overflow` (-1: none)
    var overflow: [RecordOverflow] = []
    var freeOverflow: [Int32] = []
    var lineOf: UnsafeMutablePointer<UInt64>     // the slot's line number
    var livePosition: UnsafeMutablePointer<Int32>
    var isPending: UnsafeMutablePointer<Bool>
    var tagHead: UnsafeMutablePointer<Int32>    // the slot's first thread tag (-1: none)
    // Free slots and live slots as plain buffers of `capacity` entries: no uniqueness
    // checks when a line comes and goes.
    var freeSlots: UnsafeMutablePointer<Int32>
    var freeCount = 0
    var liveSlots: UnsafeMutablePointer<Int32>
    var liveCount = 0
    var slotsUsed: Int32 = 0
    var table = LineTable()
    /// Slots in use, dense, for whole-model walks.
    var live: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(start: liveSlots, count: liveCount) }
    /// One thread: slots with flushing, wc or queued bytes, what a fence or wpqflush must
    /// visit. Several threads: slots with queued bytes (the per-thread lists hold the rest).
    var pending = SlotList()
    var visiting = SlotList()
    /// Runs of non-temporal stores that fill lines no store had touched, not yet written
    /// into slots (Model+DeferredRuns.swift), oldest first, and how many lines they fill.
    let deferred = UnsafeMutablePointer<DeferredRun>.allocate(capacity: PersistenceModel.maxDeferredRuns)
    var deferredCount = 0
    var deferredLines = 0
    var lastLine: UInt64 = .max
    var lastSlot: Int32 = -1
    /// The fast path's cache: the bounds of the last non-volatile range a store hit
    /// (empty when lo > hi), and whether stores may take the fast path at all (lines of
    /// at most 64 bytes, one thread, no counts, no --nt-evicts).
    var hotLo: UInt64 = 1
    var hotHi: UInt64 = 0
    var fastStores = false

    // The fast path's line: a store that falls wholly inside [fastBase, fastBase +
    // fastSpan) goes straight to the slot these pointers name. fastSpan is the line
    // size while the cache holds, 0 when it does not. Only a store sets it up, and every
    // other call that changes the model drops it (`dropFastLine`), so it never names
    // a slot that moved, was released or changed its table limit.
    var fastBase: UInt64 = 0
    var fastSpan: UInt64 = 0
    var fastSlot: Int32 = -1
    var fastMasks: UnsafeMutablePointer<UInt64>
    var fastStoreIdx: UnsafeMutableRawPointer
    var fastRecSeq: UnsafeMutablePointer<UInt64>
    var fastRecStack: UnsafeMutablePointer<UInt32>
    var fastRecCount: UnsafeMutablePointer<Int32>
    /// Records the slot's inline table takes before the general path must compact it.
    var fastRecRoom: Int32 = 0
    var fastPending: UnsafeMutablePointer<Bool>

    // Threads. While every event comes from one thread (`soleThread`) the masks say all
    // there is. From the first event of a second thread on (`multi`), each live line
    // also has a tag per thread that touched it: `owned` (at-risk bytes whose newest
    // store is the thread's) and `covered` (flushing bytes a write-back of the thread
    // covers). A fence by T visits only the lines in T's pending list.
    var soleThread: UInt32 = 0
    var multi = false
    /// The thread of the events being applied.
    var thread: UInt32 = 0
    var tagThread: [UInt32] = []
    var tagSlot: [Int32] = []
    var tagNext: [Int32] = []
    var tagPending: [Bool] = []
    var tagMasks: [UInt64] = []   // per tag: owned words, then covered words
    var tagFree: [Int32] = []
    /// Per thread: slots where its tag may have covered flushing or owned wc bytes (eadr:
    /// also dirty ones). May hold stale entries; a tag's `pending` flag is the truth.
    var pendingBy: [UInt32: [Int32]] = [:]

    /// At-risk bytes by state (dirty, flushing, wc, queued), kept up to date for the
    /// per-cut series. Behind a pointer: no exclusivity checks on the hot path.
    let counters: UnsafeMutablePointer<UInt64>
    static let cDirty = 0, cFlushing = 1, cWC = 2, cQueued = 3
    /// The most lines at risk at once.
    var peakLive = 0

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
        // Unused until a store sets the fast line up (fastSpan is 0).
        fastMasks = masks
        fastStoreIdx = storeIdx
        fastRecSeq = recSeq
        fastRecStack = recStack
        fastRecCount = recCount
        fastPending = isPending
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
        pending.deallocate()
        visiting.deallocate()
        deferred.deallocate()
    }

    func growSlots(to newCapacity: Int) {
        dropFastLine()
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

    /// Lines holding at-risk bytes: those with a slot and those of deferred runs.
    var liveLines: Int { liveCount &+ deferredLines }

    // MARK: Events


    /// A cached or non-temporal store of `size` bytes. Only the parts in non-volatile
    /// declared pmem are tracked.
    @inline(__always)
    func store(_ address: UInt64, _ size: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let off = address &- fastBase
        if off < fastSpan && size <= fastSpan &- off {
            // The line the previous store hit (one line of at most 64 bytes, wholly in
            // non-volatile pmem, one thread, no counts): what `storeInLine` does, through
            // the slot's pointers.
            // Every field read before the first write through a pointer, so none is read again.
            let count = fastRecCount, room = fastRecRoom, seqs = fastRecSeq, stacks = fastRecStack
            let p = fastMasks, index = fastStoreIdx, pending = fastPending
            let n = count.pointee
            if n < room {
                seqs[Int(n)] = seq
                stacks[Int(n)] = stack
                count.pointee = n &+ 1
                let lo = Int(truncatingIfNeeded: off), hi = lo &+ Int(truncatingIfNeeded: size)
                Self.setStoreMasks(p, Self.bits(lo, hi), nonTemporal: nonTemporal)
                Self.fillIndex(index + lo, UInt8(truncatingIfNeeded: n), count: hi &- lo)
                if nonTemporal && !pending.pointee { markPending(fastSlot) }
                return
            }
        }
        storeSlowly(address, address &+ (size &- 1), size, seq: seq, stack: stack, nonTemporal: nonTemporal)
    }

    /// Applies the stores (and ntstores) of `thread` from `p` on, stopping at the first
    /// other event, and returns where it stopped. Stores to the cached line run with the
    /// line's masks and table count in registers; each other store goes through `store`
    /// (which caches its line for the next ones). `outOfBounds` is called for a store that
    /// leaves [boundsLo, boundsLo + boundsLength) when `checkBounds`, before the store.
    /// A coalesced run of stores (`Event.runLength` > 1) counts as its stores: `extra`
    /// grows by each run's length less one.
    @inline(__always)
    func storeRun(_ p: UnsafePointer<Event>, _ end: UnsafePointer<Event>, thread: UInt32, checkBounds: Bool,
                  boundsLo: UInt64, boundsLength: UInt64, extra: inout UInt64,
                  outOfBounds: (Event) -> Void) -> UnsafePointer<Event> {
        var q = p
        while q < end {
            // The cached line, in locals: nothing below writes the model's fields until
            // the state is written back.
            let base = fastBase, span = fastSpan, room = fastRecRoom
            let seqs = fastRecSeq, stacks = fastRecStack, index = fastStoreIdx
            let masksPointer = fastMasks, countPointer = fastRecCount
            var n = span != 0 ? countPointer.pointee : 0
            var dirty: UInt64 = 0, flushing: UInt64 = 0, wc: UInt64 = 0, queued: UInt64 = 0, hinted: UInt64 = 0, nt: UInt64 = 0
            if span != 0 {
                dirty = masksPointer[Self.dirtyMask]
                flushing = masksPointer[Self.flushingMask]
                wc = masksPointer[Self.wcMask]
                queued = masksPointer[Self.queuedMask]
                hinted = masksPointer[Self.hintedMask]
                nt = masksPointer[Self.ntMask]
            }
            var anyNT = false
            var slow = false
            let first = n
            while q < end {
                let kind = q.pointee.kind
                guard kind.rawValue <= EventKind.ntstore.rawValue && q.pointee.thread == thread else { break }
                guard q.pointee.runLength == 1 else {
                    slow = true
                    break
                }
                let address = q.pointee.address, size = q.pointee.size
                // Below dst, `o` wraps above any length dst+len can have.
                let o = address &- boundsLo
                if checkBounds && (o > boundsLength || size > boundsLength &- o) { outOfBounds(q.pointee) }
                let off = address &- base
                guard off < span && size <= span &- off && n < room else {
                    slow = true
                    break
                }
                seqs[Int(n)] = q.pointee.seq
                stacks[Int(n)] = q.pointee.stack
                let lo = Int(truncatingIfNeeded: off), hi = lo &+ Int(truncatingIfNeeded: size)
                let m = Self.bits(lo, hi)
                flushing &= ~m
                queued &= ~m
                hinted &= ~m
                if kind == .ntstore {
                    dirty &= ~m
                    wc |= m
                    nt |= m
                    anyNT = true
                } else {
                    dirty |= m
                    wc &= ~m
                    nt &= ~m
                }
                Self.fillIndex(index + lo, UInt8(truncatingIfNeeded: n), count: hi &- lo)
                n &+= 1
                q += 1
            }
            if n != first {
                countPointer.pointee = n
                masksPointer[Self.dirtyMask] = dirty
                masksPointer[Self.flushingMask] = flushing
                masksPointer[Self.wcMask] = wc
                masksPointer[Self.queuedMask] = queued
                masksPointer[Self.hintedMask] = hinted
                masksPointer[Self.ntMask] = nt
                if anyNT { markPending(fastSlot) }
            }
            guard slow else { return q }
            if q.pointee.runLength != 1 {
                storeRepeated(q.pointee, checkBounds: checkBounds, boundsLo: boundsLo, boundsLength: boundsLength,
                              outOfBounds: outOfBounds)
                extra &+= UInt64(q.pointee.runLength &- 1)
            } else {
                // Its bounds are checked: the general path, then on with the line it caches.
                store(q.pointee.address, q.pointee.size, seq: q.pointee.seq, stack: q.pointee.stack,
                      nonTemporal: q.pointee.kind == .ntstore)
            }
            q += 1
        }
        return q
    }

    /// A run of back-to-back stores of one kind, size and stack (`Event.runLength`). A
    /// run that leaves the op's bounds anywhere is applied store by store, each judged
    /// as it comes; the whole lines a non-temporal run fills may be deferred
    /// (`deferRun`); the rest goes in by `storeEagerly`.
    @inline(never)
    func storeRepeated(_ e: Event, checkBounds: Bool, boundsLo: UInt64, boundsLength: UInt64,
                       outOfBounds: (Event) -> Void) {
        let k = UInt64(e.runLength), size = e.size, nonTemporal = e.kind == .ntstore
        // size <= 2^20 and k < 2^32: no overflow; the decoder made sure no store wraps.
        let span = size &* k
        let o = e.address &- boundsLo
        if checkBounds && (o > boundsLength || span > boundsLength &- o) {
            for i in 0..<e.runLength {
                let m = e.member(i)
                let mo = m.address &- boundsLo
                if mo > boundsLength || size > boundsLength &- mo { outOfBounds(m) }
                store(m.address, size, seq: m.seq, stack: e.stack, nonTemporal: nonTemporal)
            }
            return
        }
        // Non-temporal stores that fill whole lines no store has touched are kept as
        // one deferred run until something looks at those lines (Model+DeferredRuns.swift).
        if nonTemporal && defersRuns, let part = wholeLines(of: e) {
            storeEagerly(e, from: 0, to: part.from)
            if !deferRun(e, part) { storeEagerly(e, from: part.from, to: part.to) }
            storeEagerly(e, from: part.to, to: k)
            return
        }
        storeEagerly(e, from: 0, to: k)
    }

    /// Stores from..<to of run `e`, into their lines now: the stores that fall in the
    /// cached line go in at once (one mask update, a table entry and index bytes per
    /// store, as each alone would leave them); the run's next line, when it lies in the
    /// range the last store hit, becomes the cached line straight from its slot; any
    /// other store goes through `store`, which caches its line for the next.
    func storeEagerly(_ e: Event, from: UInt64, to k: UInt64) {
        let size = e.size, nonTemporal = e.kind == .ntstore
        var i = from
        while i < k {
            let address = e.address &+ i &* size
            let off = address &- fastBase
            if off < fastSpan && size <= fastSpan &- off {
                let n = fastRecCount.pointee
                let c = min(k &- i, divide(fastSpan &- off, by: size), UInt64(fastRecRoom > n ? fastRecRoom &- n : 0))
                if c > 0 {
                    let p = fastMasks
                    let lo = Int(truncatingIfNeeded: off), width = Int(truncatingIfNeeded: size)
                    // Store j of these: table entry n + j (its number and stack), and the
                    // index bytes of its `width` bytes name that entry.
                    var seqAt = fastRecSeq + Int(n), stackAt = fastRecStack + Int(n), at = fastStoreIdx + lo
                    var seq = e.seq &+ i, r = UInt8(truncatingIfNeeded: n)
                    let stack = e.stack
                    for _ in 0..<Int(truncatingIfNeeded: c) {
                        seqAt.pointee = seq
                        stackAt.pointee = stack
                        if width == 8 {
                            at.storeBytes(of: UInt64(r) &* 0x0101_0101_0101_0101, as: UInt64.self)
                        } else {
                            Self.fillIndex(at, r, count: width)
                        }
                        seqAt += 1
                        stackAt += 1
                        at += width
                        seq &+= 1
                        r &+= 1
                    }
                    fastRecCount.pointee = n &+ Int32(truncatingIfNeeded: c)
                    Self.setStoreMasks(p, Self.bits(lo, lo &+ width &* Int(truncatingIfNeeded: c)), nonTemporal: nonTemporal)
                    if nonTemporal && !fastPending.pointee { markPending(fastSlot) }
                    i &+= c
                    continue
                }
            }
            // Next line of the run: when the whole line lies in the range the last store
            // hit and the store stays in it, its slot becomes the fast line straight
            // away, with none of `storeSlowly`'s checks the run has already passed, and
            // the loop goes on through the branch above.
            let lineBase = address & ~UInt64(lineSize &- 1)
            if fastStores && lineBase >= hotLo && lineBase &+ UInt64(lineSize &- 1) <= hotHi
                && (address &+ (size &- 1)) >> lineShift == lineBase >> lineShift {
                let s = slot(forLine: lineBase >> lineShift, create: true)!
                if recCount[Int(s)] < min(Int32(Self.inlineRecords), recLimit[Int(s)]) {
                    setFastLine(lineBase, s)
                    continue
                }
            }
            store(address, size, seq: e.seq &+ i, stack: e.stack, nonTemporal: nonTemporal)
            i &+= 1
        }
    }

    /// The bytes `m` of a one-word line (masks at `p`) after a store: dirty (cached) or wc
    /// (non-temporal), whatever they were.
    @inline(__always)
    static func setStoreMasks(_ p: UnsafeMutablePointer<UInt64>, _ m: UInt64, nonTemporal: Bool) {
        p[flushingMask] &= ~m
        p[queuedMask] &= ~m
        p[hintedMask] &= ~m
        if nonTemporal {
            p[dirtyMask] &= ~m
            p[wcMask] |= m
            p[ntMask] |= m
        } else {
            p[dirtyMask] |= m
            p[wcMask] &= ~m
            p[ntMask] &= ~m
        }
    }

    /// Forgets the fast path's line (see `fastBase`).
    @inline(__always)
    func dropFastLine() {
        fastSpan = 0
        fastSlot = -1
    }

    /// After a store to one line in the non-volatile range [hotLo, hotHi]: the next
    /// stores to that line take the fast path, if the whole line lies in the range.
    @inline(__always)
    func cacheFastLine(_ address: UInt64) {
        let base = address & ~UInt64(lineSize &- 1)
        guard fastStores, base >= hotLo, base &+ UInt64(lineSize &- 1) <= hotHi, lastLine == base >> lineShift,
              lastSlot >= 0
        else { return }
        setFastLine(base, lastSlot)
    }

    /// Makes slot `slot`, of the line at `base`, the fast path's line: the caller has
    /// checked what `cacheFastLine` checks.
    @inline(__always)
    func setFastLine(_ base: UInt64, _ slot: Int32) {
        let s = Int(slot)
        fastBase = base
        fastSpan = UInt64(lineSize)
        fastSlot = slot
        fastMasks = masks + s &* Self.maskCount
        fastStoreIdx = storeIdx + s &* lineSize
        fastRecSeq = recSeq + s &* Self.inlineRecords
        fastRecStack = recStack + s &* Self.inlineRecords
        fastRecCount = recCount + s
        fastRecRoom = min(Int32(Self.inlineRecords), recLimit[s])
        fastPending = isPending + s
    }

    /// The fast path: a store within one line of at most 64 bytes, one thread, no counts.
    @inline(__always)
    func storeInLine(_ s: Int32, _ first: UInt64, _ last: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        let lineMask = UInt64(truncatingIfNeeded: lineSize &- 1)
        let lo = Int(truncatingIfNeeded: first & lineMask), hi = Int(truncatingIfNeeded: last & lineMask) &+ 1
        // The record first: compacting the table reads the masks as they were.
        let r = addRecord(s, seq: seq, stack: stack)
        Self.setStoreMasks(masks + Int(s) &* Self.maskCount, Self.bits(lo, hi), nonTemporal: nonTemporal)
        if nonTemporal { markPending(s) }
        setStore(s, lo, hi, r)
    }

    @inline(never)
    func storeSlowly(_ address: UInt64, _ last: UInt64, _ size: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
        dropFastLine()
        if fastStores && address >= hotLo && last <= hotHi && address >> lineShift == last >> lineShift {
            // One line in the range the last store hit: the line's first store, or the
            // first since something else touched the model.
            storeInLine(slot(forLine: address >> lineShift, create: true)!, address, last, seq: seq, stack: stack,
                        nonTemporal: nonTemporal)
            cacheFastLine(address)
            return
        }
        if let r = rangeIndex(containing: address), last <= rangeLast[r] {
            if !rangeVolatile[r] {
                hotLo = rangeBase[r]
                hotHi = rangeLast[r]
                storeTracked(address, last, seq: seq, stack: stack, nonTemporal: nonTemporal)
                if address >> lineShift == last >> lineShift { cacheFastLine(address) }
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
    func evict(_ s: Int32, seq: UInt64) {
        dropFastLine()
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
    func storeTracked(_ first: UInt64, _ last: UInt64, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
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

    func storeLine(_ s: Int32, _ lo: Int, _ hi: Int, seq: UInt64, stack: UInt32, nonTemporal: Bool) {
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
    func lineKind(_ line: UInt64) -> (pmem: Bool, volatileOnly: Bool) {
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
        dropFastLine()
        let line = address >> lineShift
        let s = slot(forLine: line, create: false)
        if s == nil {
            let k = lineKind(line)
            if !k.pmem { return .notPmem }
            if k.volatileOnly { return .volatile }
        }
        if domain == .eadr { return .eadr }
        guard let s else { return .redundant }
        if wordsPerLine == 1 && !counting && !multi && (kind != .clflush || strictClflush) {
            // The usual clwb or clflushopt: one mask word, no counts, one thread; what
            // the general path below does, with the line's dirty bytes in a register.
            // The line stays the fast path's for the stores that follow (a copy's head
            // is written back before its body goes on in the same line).
            let m = masks + Int(s) &* Self.maskCount
            let d = m[Self.dirtyMask]
            if d == 0 {
                cacheFastLine(address)
                return .redundant
            }
            let via = addRecord(s, seq: seq, stack: 0)
            m[Self.dirtyMask] = 0
            m[Self.flushingMask] |= d
            setVia(s, 0, d, via)
            markPending(s)
            cacheFastLine(address)
            return .wroteBack
        }
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
        dropFastLine()
        if multi {
            fenceByThread(seq: seq)
            return
        }
        // One thread, adr or eadr: every deferred byte is wc, stored by this thread.
        if deferredCount > 0 { dropDeferred() }
        switch domain {
        case .adr:
            swap(&pending, &visiting)
            if wordsPerLine == 1 && !counting {
                // The usual lines: one word per mask, no counts.
                var kept = 0
                for s in visiting.slots {
                    isPending[Int(s)] = false
                    let m = masks + Int(s) &* Self.maskCount
                    m[Self.flushingMask] = 0
                    m[Self.wcMask] = 0
                    if m[Self.dirtyMask] | m[Self.queuedMask] != 0 { kept &+= 1 }
                }
                if kept == 0 && visiting.count == liveCount {
                    // Every line at risk was waiting for this fence, and none is now.
                    releaseAll()
                } else {
                    for s in visiting.slots {
                        let m = masks + Int(s) &* Self.maskCount
                        if m[Self.dirtyMask] | m[Self.queuedMask] == 0 { release(s) }
                    }
                }
                visiting.removeAll()
                return
            }
            for s in visiting.slots {
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
            visiting.removeAll()
        case .eadr:
            for s in pending.slots { isPending[Int(s)] = false }
            pending.removeAll()
            while let s = live.last { release(s) }
            counters.update(repeating: 0, count: 4)
        case .wpq:
            swap(&pending, &visiting)
            for s in visiting.slots {
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
            visiting.removeAll()
        }
    }

    /// A fence by `thread` when several threads ran: only the flushing bytes its
    /// write-backs covered and the wc bytes it stored (eadr: and the dirty bytes it
    /// stored last) move on; in wpq, bytes queued when a flush hint was written (by any
    /// thread) reach the media.
    func fenceByThread(seq: UInt64) {
        if domain == .wpq {
            swap(&pending, &visiting)
            for s in visiting.slots {
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
            visiting.removeAll()
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
        dropFastLine()
        guard domain == .wpq else { return }
        for s in pending.slots {
            let queued = maskPointer(s, Self.queuedMask), hinted = maskPointer(s, Self.hintedMask)
            for w in 0..<wordsPerLine { hinted[w] |= queued[w] }
        }
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
