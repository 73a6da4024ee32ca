import PowercutTrace

/// The rules of the persistence model (Docs/model.md).
public enum Rule: String, Sendable, CaseIterable, Codable {
    case notDurable = "not-durable"
    case dirtyAtReturn = "dirty-at-return"
    case outOfBoundsStore = "out-of-bounds-store"
    case missingDrain = "missing-drain"
    case redundantFlush = "redundant-flush"
    case unnecessaryFlush = "unnecessary-flush"

    public var severity: Severity {
        switch self {
        case .notDurable, .dirtyAtReturn, .outOfBoundsStore: .error
        case .missingDrain: .warning
        case .redundantFlush, .unnecessaryFlush: .note
        }
    }

    /// One line: what the rule catches.
    public var summary: String {
        switch self {
        case .notDurable: "Bytes are at risk where durability was promised"
        case .dirtyAtReturn: "A flushcache routine returned with bytes still in the cache"
        case .outOfBoundsStore: "A routine stored to persistent memory outside its destination"
        case .missingDrain: "A flushcache op has no fence after it"
        case .redundantFlush: "A write-back of a line with nothing dirty in it"
        case .unnecessaryFlush: "A write-back where the cache needs none"
        }
    }

    /// What the rule means and what fixes it, for help texts.
    public var help: String {
        switch self {
        case .notDurable:
            "At a drain point (the first fence after a flushcache op returns), at the return of a persist op, or at a `durable` assertion, some bytes of the range could still be lost by a power failure. Each range says its state and what is missing: a dirty byte needs a write-back (clwb/clflushopt/clflush) of its line and then a fence; a flushing byte needs a fence after its write-back; a non-temporal (wc) byte needs a fence; a queued byte (wpq domain) needs a flush-hint write and a fence."
        case .dirtyAtReturn:
            "A flushcache routine (memcpy_flushcache, copy_from_iter_flushcache, PMDK's *_nodrain) must leave no byte of its destination dirty in the CPU cache: the caller's fence only drains write-backs and non-temporal stores that the routine issued. Write back every line the routine stored to with cached stores (typically the unaligned head and tail) before returning."
        case .outOfBoundsStore:
            "Inside an op, the routine stored to persistent memory outside [dst, dst+len). Either the routine overruns its destination or the op's range is wrong."
        case .missingDrain:
            "The trace ends without a fence after a flushcache op, so nothing drained its write-backs and non-temporal stores; its range is checked at the end of the trace instead. Record the caller's fence (for example the sfence of nvdimm_flush or pmem_drain)."
        case .redundantFlush:
            "A write-back of a line that had no dirty byte costs time and proves nothing; it often hides a write-back of the wrong line."
        case .unnecessaryFlush:
            "In the eadr domain the caches are persistent, and a volatile range needs no flushing: the write-back is overhead."
        }
    }
}

public enum Severity: String, Sendable, Comparable, Codable {
    case error, warning, note

    private var rank: Int {
        switch self {
        case .error: 2
        case .warning: 1
        case .note: 0
        }
    }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// A byte's place in an op's destination (Docs/model.md, positions).
public enum Position: String, Sendable, Codable {
    case head, body, tail, outside
}

/// The state of a byte's newest value.
public enum ByteState: String, Sendable, Codable, CaseIterable {
    case durable, dirty, flushing, wc, queued
    /// Not in the pmem the model tracks (an out-of-bounds store's bytes, or a `durable`
    /// assertion over memory that no pmem record declares).
    case outside
}

/// An op as a finding names it.
public struct OpInfo: Sendable, Equatable {
    public var id: UInt64
    public var name: String?
    public var dst: UInt64
    public var length: UInt64
    public var source: UInt64?
    public var contract: Contract
    /// The `op ID begin` and `op ID end` events.
    public var begin: UInt64
    public var end: UInt64?
    var nameIndex: UInt32 = 0

    /// Head, body or tail of a byte in this op's range (outside when not in it).
    public func position(of address: UInt64) -> Position {
        guard address >= dst && address - dst < length else { return .outside }
        let h = (8 - dst % 8) % 8
        let t = (dst &+ length) % 8
        let offset = address - dst
        if offset < min(h, length) { return .head }
        if offset >= length - t { return .tail }
        return .body
    }

    /// Addresses where the position may change: the end of the head and the start of the tail.
    var positionBoundaries: (UInt64, UInt64) {
        // As offsets from dst, so a range that ends at the top of the address space
        // does not wrap.
        let h = min((8 - dst % 8) % 8, length)
        let t = (dst &+ length) % 8
        let tail = length >= t ? max(h, length - t) : h
        return (dst &+ h, dst &+ tail)
    }
}

/// What would make a range durable.
public enum Missing: String, Sendable, Codable {
    /// dirty: a write-back of the line after the store, then a fence.
    case writeBackAndFence = "write-back+fence"
    /// flushing: a fence after the write-back.
    case fence = "fence"
    /// wc: a fence after the non-temporal store.
    case fenceAfterNT = "fence-after-nt"
    /// queued: a flush-hint write and a fence.
    case flushHintAndFence = "wpqflush+fence"
    /// An out-of-bounds store: keep the store inside the op's range.
    case inBounds = "in-bounds"
    /// A durable assertion over memory that no pmem record declares.
    case pmemRecord = "pmem-record"
    /// A flush that should not be there.
    case none = "none"
}

/// A maximal run of bytes with the same position, state and event.
public struct ByteRange: Sendable, Equatable {
    public var start: UInt64
    public var length: UInt64
    public var position: Position?
    public var state: ByteState
    /// The store that wrote the bytes' newest value (nil: no store, e.g. a durable
    /// assertion over untracked memory).
    public var event: UInt64?
    /// Whether that store was non-temporal.
    public var nonTemporal: Bool
    /// That store's stack (0: none).
    public var stack: UInt32
    /// The event that moved the bytes to their state when it is not the store: the
    /// write-back for `flushing`, the fence (or clflush) for `queued`.
    public var via: UInt64?
    public var lineSize: UInt64
    public var missing: Missing

    /// The first and last line the range touches.
    public var lines: (first: UInt64, last: UInt64) {
        (start & ~(lineSize - 1), (start &+ length &- 1) & ~(lineSize - 1))
    }
}

/// One verdict: a rule broken at a cut point.
public struct Finding: Sendable, Equatable {
    public var rule: Rule
    public var severity: Severity { rule.severity }
    public var op: OpInfo?
    /// The event where it was decided (the op end, fence, assertion, store or flush);
    /// nil when decided at the end of the trace.
    public var event: UInt64?
    /// The cut point whose state was judged: just after `event` (or N at the end).
    public var cut: UInt64
    public var ranges: [ByteRange]
    /// Ranges left out of `ranges` for length (`ReplayOptions.maxRangesPerFinding`).
    public var omittedRanges: Int
    /// Bytes at risk in all ranges, including the omitted ones.
    public var bytes: UInt64
    /// For flush notes: the line written back.
    public var line: UInt64?
    /// The deciding event's stack (0: none).
    public var stack: UInt32
    /// For flush notes: which write-back.
    public var eventKind: EventKind?

    public init(rule: Rule, op: OpInfo?, event: UInt64?, cut: UInt64, ranges: [ByteRange] = [], omittedRanges: Int = 0,
                bytes: UInt64 = 0, line: UInt64? = nil, stack: UInt32 = 0, eventKind: EventKind? = nil) {
        self.rule = rule
        self.op = op
        self.event = event
        self.cut = cut
        self.ranges = ranges
        self.omittedRanges = omittedRanges
        self.bytes = bytes
        self.line = line
        self.stack = stack
        self.eventKind = eventKind
    }
}

/// At-risk byte counts by state at one cut point.
public struct CutCounts: Sendable, Equatable {
    public var dirty: UInt64 = 0
    public var flushing: UInt64 = 0
    public var wc: UInt64 = 0
    public var queued: UInt64 = 0
    public var atRisk: UInt64 { dirty + flushing + wc + queued }
    public init(dirty: UInt64 = 0, flushing: UInt64 = 0, wc: UInt64 = 0, queued: UInt64 = 0) {
        self.dirty = dirty
        self.flushing = flushing
        self.wc = wc
        self.queued = queued
    }
}
