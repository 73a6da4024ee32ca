import PowercutTrace

/// The per-cut series as the replay goes: at-risk bytes by state at cut 0, then at cut
/// k+1 after each numbered event #k, handed to `body` one cut at a time. Nothing is
/// kept, so memory stays flat however long the trace (`ReplayOptions.recordCuts` keeps
/// the whole series instead). Pass it as the replayer's observer.
public final class CutSeries: ReplayObserver {
    private let body: (_ cut: UInt64, _ counts: CutCounts) -> Void
    private var next: UInt64 = 0

    public init(_ body: @escaping (_ cut: UInt64, _ counts: CutCounts) -> Void) {
        self.body = body
    }

    public var needsAtRiskCounts: Bool { true }

    public func replayStarted(_ replayer: Replayer) {
        body(0, replayer.counts)
        next = 1
    }

    public func replayer(_ replayer: Replayer, applied event: Event, data: ArraySlice<UInt8>?) {
        body(next, replayer.counts)
        next += 1
    }
}
