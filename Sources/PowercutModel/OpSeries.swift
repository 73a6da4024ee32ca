import PowercutTrace

/// Ops as the replay meets them, for reports with one entry per op (JUnit), without
/// `ReplayOptions.keepOps` holding them all: `began` gets each op at its `op begin` (so
/// in begin order), `ended` its ID and end event when the same thread's `op … end`
/// closes it (ops of one thread do not nest; the reader checks). Names come as indexes
/// (1-based into `TraceReader.names`, 0 for none): resolve them once the trace is read.
public final class OpSeries: ReplayObserver {
    private let began: (_ op: OpInfo, _ nameIndex: UInt32) -> Void
    private let ended: (_ id: UInt64, _ end: UInt64) -> Void

    public init(began: @escaping (_ op: OpInfo, _ nameIndex: UInt32) -> Void, ended: @escaping (_ id: UInt64, _ end: UInt64) -> Void) {
        self.began = began
        self.ended = ended
    }

    /// Ops come from markers: runs of stores keep the replayer's fast path.
    public var observesStores: Bool { false }

    public func replayer(_ replayer: Replayer, applied e: Event, data: ArraySlice<UInt8>?) {
        switch e.kind {
        case .opBegin:
            var op = OpInfo(id: e.op, name: nil, dst: e.address, length: e.size,
                            source: e.hasSource ? e.source : nil, contract: e.contract, begin: e.seq, end: nil)
            op.nameIndex = e.name
            began(op, e.name)
        case .opEnd:
            ended(e.op, e.seq)
        default:
            break
        }
    }
}
