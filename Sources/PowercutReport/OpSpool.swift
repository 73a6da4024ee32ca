import PowercutModel
import PowercutOutput
import PowercutTrace

/// The ops of a trace for per-op reports (JUnit), without holding them: an `OpSeries`
/// observer writes a 32-byte record per op at its begin (ID, begin, end, name index),
/// so records are in begin order, and fills in the end when the op ends. Records wait
/// in a `Spool` (a temporary file past 1 MiB); only the ops open now are in memory.
public final class OpSpool {
    public let spool = Spool()
    /// Record index of each open op, by op ID (at most one per thread).
    private var open: [UInt64: Int] = [:]
    private var records = 0
    /// How many ops ended.
    public private(set) var endedCount = 0
    private var failure: SpoolError?
    /// The trace's op names (`TraceReader.names`), set once the trace is read.
    public var names: [String] = []

    static let recordSize = 32
    static let notEnded = UInt64.max

    public init() {}

    /// The observer to hand to the replayer.
    public func observer() -> OpSeries {
        OpSeries(began: { [self] op, name in began(op, name) }, ended: { [self] id, end in ended(id, end) })
    }

    /// Throws the first write error, if any.
    public func check() throws(SpoolError) {
        if let failure { throw failure }
    }

    private func began(_ op: OpInfo, _ name: UInt32) {
        guard failure == nil else { return }
        var r: (UInt64, UInt64, UInt64, UInt64) = (op.id, op.begin, Self.notEnded, UInt64(name))
        failure = withUnsafeBytes(of: &r) { p in
            do throws(SpoolError) { try spool.write(p) } catch { return error }
            return nil
        }
        open[op.id] = records
        records += 1
    }

    private func ended(_ id: UInt64, _ end: UInt64) {
        guard failure == nil, let k = open.removeValue(forKey: id) else { return }
        var e = end
        failure = withUnsafeBytes(of: &e) { p in
            do throws(SpoolError) { try spool.patch(at: k * Self.recordSize + 16, p) } catch { return error }
            return nil
        }
        endedCount += 1
    }

    /// Every op that ended, in begin order: its ID, begin, end and name index (1-based
    /// into the trace's names, 0 for none).
    public func forEachEnded(_ body: (_ id: UInt64, _ begin: UInt64, _ end: UInt64, _ name: UInt32) throws -> Void) throws {
        try spool.forEachChunk { chunk in
            var i = 0
            while i + Self.recordSize <= chunk.count {
                let id = chunk.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let begin = chunk.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
                let end = chunk.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
                let name = chunk.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
                if end != Self.notEnded { try body(id, begin, end, UInt32(truncatingIfNeeded: name)) }
                i += Self.recordSize
            }
        }
    }
}

/// The ops of every trace of a run, in one spool: each trace's `OpSpool` is moved in
/// once its replay is done and then let go, so however many traces a run has, only
/// those in flight hold spools (and temporary files) of their own, and the run holds at
/// most one more.
public final class OpLog {
    private let spool = Spool()

    /// One trace's ops: where its records are, how many, and its op names.
    public struct Part: Sendable {
        public let first: Int
        public let endedCount: Int
        public let names: [String]
    }

    public private(set) var parts: [Part] = []
    private var records = 0

    public init() {}

    /// Appends the ended ops of a finished trace's spool, as the next trace's part.
    public func add(_ ops: OpSpool) throws {
        let first = records
        try ops.forEachEnded { id, begin, end, name in
            var r: (UInt64, UInt64, UInt64, UInt64) = (id, begin, end, UInt64(name))
            try withUnsafeBytes(of: &r) { p throws(SpoolError) in try spool.write(p) }
            records += 1
        }
        parts.append(Part(first: first, endedCount: records - first, names: ops.names))
    }

    /// The ops of part `i`, in begin order: ID, begin, end and name index (read back
    /// 2,048 records at a time).
    public func forEachEnded(of i: Int, _ body: (_ id: UInt64, _ begin: UInt64, _ end: UInt64, _ name: UInt32) throws -> Void) throws {
        let part = parts[i]
        let size = OpSpool.recordSize
        var block = [UInt8](repeating: 0, count: 2048 * size)
        var k = part.first
        let end = part.first + part.endedCount
        while k < end {
            let n = min(2048, end - k)
            try block.withUnsafeMutableBytes { p in
                try spool.read(at: k * size, into: UnsafeMutableRawBufferPointer(rebasing: p[0..<(n * size)]))
                for j in 0..<n {
                    let o = j * size
                    try body(p.loadUnaligned(fromByteOffset: o, as: UInt64.self), p.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self),
                             p.loadUnaligned(fromByteOffset: o + 16, as: UInt64.self),
                             UInt32(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: o + 24, as: UInt64.self)))
                }
            }
            k += n
        }
    }
}
