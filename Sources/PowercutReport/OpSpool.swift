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
