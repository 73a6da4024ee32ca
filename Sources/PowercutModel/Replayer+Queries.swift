import PowercutTrace

// What an observer (explain, a per-cut series) may ask the replayer about the cut point
// it shows, beyond `state(of:)` and `counts`. Thin wrappers over the model's own
// queries: an observer keeps no model state of its own.

extension Replayer {
    /// The at-risk bytes of [first, last] (inclusive) at this cut, in address order, as
    /// maximal runs of one state, store and write-back; each says what is missing.
    /// `position` is nil (no op is implied).
    public func atRisk(_ first: UInt64, _ last: UInt64) -> [ByteRange] {
        guard first <= last else { return [] }
        return model.risks(first, last).map { run in
            ByteRange(start: run.start, length: run.length, position: nil, state: run.state, event: run.store,
                      nonTemporal: run.nonTemporal, stack: run.stack, via: run.via, lineSize: UInt64(model.lineSize),
                      missing: Missing(atRisk: run.state))
        }
    }

    /// Whether `address` lies in a pmem range the trace declares.
    public func isPmem(_ address: UInt64) -> Bool { model.rangeIndex(containing: address) != nil }
}

extension Missing {
    /// What would make a byte in `state` durable.
    public init(atRisk state: ByteState) {
        switch state {
        case .dirty: self = .writeBackAndFence
        case .flushing: self = .fence
        case .wc: self = .fenceAfterNT
        case .queued: self = .flushHintAndFence
        case .durable, .outside: self = .none
        }
    }
}
