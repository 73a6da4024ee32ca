/// One write: a store's or non-temporal store's part of one cache line, the unit of
/// persistence (a line is written back whole; a write-combining buffer drains a
/// store's part of a line at once).
public struct Write: Sendable, Equatable {
    /// The event that made it (`#N`).
    public var seq: UInt64
    public var thread: UInt32
    public var stack: UInt32
    public var nonTemporal: Bool
    /// Where in its line, and the bytes (untracked bytes of the line are left out of
    /// every image, whatever a write holds there).
    public var offset: Int
    public var bytes: [UInt8]
    /// A cached write's 1-based place among its line's cached writes.
    public var cachedIndex: Int = 0
    /// A non-temporal write whose thread fenced after it (in `wpq`: it is queued).
    public var fenced = false
    /// A non-temporal write that is guaranteed to persist.
    public var ntGuaranteed = false

    public var length: Int { bytes.count }
}

/// What the images know about one line: its content before the writes not yet
/// folded in, those writes in program order, and how far its cached writes are
/// guaranteed. A write that is guaranteed and has no earlier at-risk write is folded
/// into `base`, so memory holds only what is at risk.
final class LineState {
    let address: UInt64
    /// Tracked pieces of the line.
    let runs: [TrackedRun]
    /// Per offset: tracked or not.
    let tracked: [Bool]
    var base: [UInt8]
    var writes: [Write] = []
    /// m: cached writes so far (folded ones included).
    var cachedTotal = 0
    /// g: the guaranteed prefix of cached writes.
    var guaranteed = 0
    /// wpq: the prefix made durable up to the write pending queue (a write-back and a fence, or clflush).
    var queued = 0
    /// The newest write's event (for knowing what changed since a cut).
    var lastWrite: UInt64 = 0
    /// The line's content when every write so far persists.
    var newest: [UInt8]
    /// Changes whenever its writes or guarantees do, so its factors are reused while it stays.
    var version = 0
    var factors: (version: Int, factors: [Factor])?

    init(address: UInt64, runs: [TrackedRun], initial: [UInt8]) {
        self.address = address
        self.runs = runs
        var t = [Bool](repeating: false, count: initial.count)
        for r in runs { for i in r.lineOffset..<r.lineOffset + r.length { t[i] = true } }
        tracked = t
        base = initial
        newest = initial
    }

    func isGuaranteed(_ w: Write) -> Bool {
        w.nonTemporal ? w.ntGuaranteed : w.cachedIndex <= guaranteed
    }

    func add(_ w: Write) {
        var w = w
        if !w.nonTemporal {
            cachedTotal += 1
            w.cachedIndex = cachedTotal
        }
        lastWrite = w.seq
        version += 1
        for (i, b) in w.bytes.enumerated() { newest[w.offset + i] = b }
        writes.append(w)
    }

    /// Folds leading guaranteed writes into the base content.
    func fold() {
        version += 1
        var n = 0
        while n < writes.count && isGuaranteed(writes[n]) {
            let w = writes[n]
            for (i, b) in w.bytes.enumerated() { base[w.offset + i] = b }
            n += 1
        }
        if n > 0 { writes.removeFirst(n) }
    }

    /// At-risk writes remain.
    var isVariable: Bool { !writes.isEmpty }
}
