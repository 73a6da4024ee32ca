import PowercutTrace

/// How to replay a trace.
public struct ReplayOptions: Sendable {
    /// Overrides the trace's `domain` record.
    public var domain: Domain?
    /// A non-temporal store evicts the line's other dirty bytes (they become flushing).
    public var ntEvicts = false
    /// clflush needs a fence, like clflushopt.
    public var strictClflush = false
    /// Keep the at-risk byte counts of every cut point in the result. Memory grows with
    /// the trace; to stream the series instead, set `countAtRisk` and read
    /// `Replayer.counts` from an observer after each event.
    public var recordCuts = false
    /// Keep `Replayer.counts` up to date after every event (costs popcounts per store).
    public var countAtRisk = false
    /// At most this many findings are kept in the result; the rest are counted
    /// (`ReplayResult.omittedFindings`) and still passed to the observer.
    public var maxFindings = Int.max
    /// At most this many ranges per finding; the rest are counted in `omittedRanges`.
    public var maxRangesPerFinding = 256
    /// Keep every op in the result (for per-op reports); memory then grows with the
    /// number of ops, so it is off for plain checks.
    public var keepOps = false

    public init(domain: Domain? = nil, ntEvicts: Bool = false, strictClflush: Bool = false, recordCuts: Bool = false) {
        self.domain = domain
        self.ntEvicts = ntEvicts
        self.strictClflush = strictClflush
        self.recordCuts = recordCuts
    }
}

/// What a replay found.
public struct ReplayResult: Sendable {
    public var domain: Domain
    public var lineSize: UInt64
    /// Numbered events (stack definitions excluded).
    public var events: UInt64
    public var findings: [Finding]
    /// Every op that ended, in order (when `ReplayOptions.keepOps`).
    public var ops: [OpInfo]
    /// How many ops began.
    public var opCount: Int
    /// At-risk bytes by state at cut 0…N, when asked for.
    public var cuts: [CutCounts]?
    /// The most lines at risk at once: the model's working set.
    public var peakLiveLines: Int
    /// Whether anything was judged: an op with a contract (flushcache or persist) or a
    /// `durable` assertion. When false, an empty report proves nothing.
    public var checkedAnything: Bool
    /// Stores with at least one byte outside every declared pmem range (the model does
    /// not track those bytes).
    public var storesOutsidePmem: UInt64

    /// Findings left out of `findings` (`ReplayOptions.maxFindings`), by severity. The
    /// counts below include them.
    public var omittedFindings: [Severity: Int] = [:]

    public var errors: Int { findings.count { $0.severity == .error } + omittedFindings[.error, default: 0] }
    public var warnings: Int { findings.count { $0.severity == .warning } + omittedFindings[.warning, default: 0] }
    public var notes: Int { findings.count { $0.severity == .note } + omittedFindings[.note, default: 0] }
}

/// Something that watches a replay event by event, instead of replaying again: explain,
/// the per-cut series, crash images. After `replayer(_:applied:data:)` for event #k the
/// model shows cut k+1 (a power failure just after #k); the replayer's queries
/// (`state(of:)`, `counts`) answer for that cut. Every method has an empty default.
public protocol ReplayObserver: AnyObject {
    /// Before the first event: the model shows cut 0.
    func replayStarted(_ replayer: Replayer)
    /// The model applied numbered event `event` (stack definitions are not passed).
    /// `data` holds a store's bytes when the trace has them.
    func replayer(_ replayer: Replayer, applied event: Event, data: ArraySlice<UInt8>?)
    /// A finding was decided at the cut just after its event.
    func replayer(_ replayer: Replayer, found finding: Finding)
    /// The replay ended (after the end-of-trace verdicts).
    func replayFinished(_ replayer: Replayer, result: ReplayResult)
    /// True when the observer reads `Replayer.counts` (the per-cut series): the model
    /// then keeps them up to date.
    var needsAtRiskCounts: Bool { get }
    /// False when the observer ignores stores (it wants markers, fences and
    /// write-backs only): the replayer then keeps its fast path for runs of stores and
    /// calls the observer for every other event.
    var observesStores: Bool { get }
}

extension ReplayObserver {
    public func replayStarted(_ replayer: Replayer) {}
    public func replayer(_ replayer: Replayer, applied event: Event, data: ArraySlice<UInt8>?) {}
    public func replayer(_ replayer: Replayer, found finding: Finding) {}
    public func replayFinished(_ replayer: Replayer, result: ReplayResult) {}
    public var needsAtRiskCounts: Bool { false }
    public var observesStores: Bool { true }
}

/// The op state of one thread: its latest op (open or not), the bounds its stores must
/// keep, and its flushcache ops waiting for a drain point.
struct ThreadOps {
    var latest: OpRecord?
    var checkBounds = false
    var boundsLo: UInt64 = 0
    var boundsLength: UInt64 = 0
    var openFindings = 0
    var awaitingDrain: [OpRecord] = []
}

/// An op as the replayer keeps it while it runs: plain numbers, copied with no runtime
/// calls (an `OpInfo`, with its optionals and name, is built only for a finding), in as
/// few bytes as it takes: a trace may leave millions of flushcache ops waiting.
struct OpRecord {
    var id: UInt64
    var dst: UInt64
    var length: UInt64
    var source: UInt64
    var begin: UInt64
    /// Valid when `ended`.
    var end: UInt64 = 0
    var nameIndex: UInt32
    var contract: Contract
    var hasSource: Bool
    var ended = false
    /// A flushcache op that left no dirty byte in its range when it returned.
    var cleanAtReturn = false

    /// The op an `op ID begin` event opens.
    init(_ e: Event) {
        id = e.op
        dst = e.address
        length = e.size
        source = e.hasSource ? e.source : 0
        hasSource = e.hasSource
        contract = e.contract
        begin = e.seq
        nameIndex = e.name
    }

    var info: OpInfo {
        var o = OpInfo(id: id, name: nil, dst: dst, length: length, source: hasSource ? source : nil,
                       contract: contract, begin: begin, end: ended ? end : nil)
        o.nameIndex = nameIndex
        return o
    }
}

/// Walks every cut point of a trace over the persistence model and judges the op
/// contracts and `durable` assertions where they apply. Feed it events in order with
/// `apply`, then call `finish`.
public final class Replayer {
    public let options: ReplayOptions
    public let domain: Domain
    let model: PersistenceModel
    private let lineSize: UInt64

    private var events: UInt64 = 0
    private var findings: [Finding] = []
    private var omitted: [Severity: Int] = [:]
    /// Every op, when `keepOps`; otherwise only counted.
    private var ops: [OpInfo] = []
    private var opCount = 0
    /// Whether any op with a contract began or any durable assertion was seen.
    private var judged = false

    // The op state of the thread of the latest event, in plain fields for the hot path;
    // other threads' states are parked in `parked` until their next event.
    private var activeThread: UInt32 = 0
    private var parked: [UInt32: ThreadOps] = [:]
    /// The latest op of the active thread, open or not.
    private var latest: OpRecord?
    /// The open op's destination as plain numbers, when its contract asks for bounds
    /// checks: boundsLength bytes from boundsLo.
    private var checkBounds = false
    private var boundsLo: UInt64 = 0
    private var boundsLength: UInt64 = 0
    /// Findings from here on belong to the open op (their end is filled in at its end).
    private var openFindings = 0
    /// The active thread's flushcache ops that returned and wait for their drain point.
    private var awaitingDrain: [OpRecord] = []
    /// The latest flush-hint write (wpq): a waiting op whose end is before it saw one.
    private var lastHint: UInt64?
    private var cuts: [CutCounts] = []
    /// Watches the replay (explain, crash images, per-cut series); nil on the fast path.
    private var observer: ReplayObserver?

    public init(header: TraceHeader, options: ReplayOptions = ReplayOptions(), observer: ReplayObserver? = nil) {
        self.options = options
        domain = options.domain ?? header.domain
        lineSize = header.lineSize
        model = PersistenceModel(domain: domain, lineSize: header.lineSize, ranges: header.pmem,
                                 ntEvicts: options.ntEvicts, strictClflush: options.strictClflush,
                                 counting: options.recordCuts || options.countAtRisk
                                    || observer?.needsAtRiskCounts == true)
        if options.recordCuts { cuts.append(CutCounts()) }
        self.observer = observer
        observer?.replayStarted(self)
    }

    /// Replays the events of a batch (stack definitions are skipped).
    public func apply(_ batch: EventBatch) {
        if let observer, observer.observesStores {
            for e in batch.events where e.kind != .stackDefinition { apply(e, telling: observer, batch) }
            return
        }
        let fast = !options.recordCuts
        batch.events.withUnsafeBufferPointer { buffer in
            guard var p = buffer.baseAddress else { return }
            let end = p + buffer.count
            while p < end {
                // Stores are most events: they take the short way, runs of them through
                // the model's line cache.
                if fast && p.pointee.kind.rawValue <= EventKind.ntstore.rawValue && p.pointee.thread == activeThread {
                    let start = p
                    var extra: UInt64 = 0
                    p = model.storeRun(p, end, thread: activeThread, checkBounds: checkBounds, boundsLo: boundsLo,
                                       boundsLength: boundsLength, extra: &extra) { outOfBounds($0) }
                    events &+= UInt64(p - start) &+ extra
                } else {
                    if let observer, p.pointee.kind != .stackDefinition {
                        apply(p.pointee, telling: observer, batch)
                    } else {
                        applyOther(p.pointee)
                    }
                    p += 1
                }
            }
        }
    }

    /// Parks the active thread's op state and takes up `thread`'s.
    private func switchThread(to thread: UInt32) {
        parked[activeThread] = ThreadOps(latest: latest, checkBounds: checkBounds, boundsLo: boundsLo,
                                         boundsLength: boundsLength, openFindings: openFindings,
                                         awaitingDrain: awaitingDrain)
        let next = parked.removeValue(forKey: thread) ?? ThreadOps()
        latest = next.latest
        checkBounds = next.checkBounds
        boundsLo = next.boundsLo
        boundsLength = next.boundsLength
        openFindings = next.openFindings
        awaitingDrain = next.awaitingDrain
        activeThread = thread
        model.setThread(thread)
    }

    /// Applies one event (each store of a coalesced run in turn).
    public func apply(_ e: Event) { applyOther(e) }

    /// Applies an event of `batch` and tells the observer, store by store for a run.
    private func apply(_ whole: Event, telling observer: ReplayObserver, _ batch: EventBatch) {
        whole.forEachMember { e in
            applyOther(e)
            observer.replayer(self, applied: e, data: e.hasData ? batch.data(of: e) : nil)
        }
    }

    /// Applies everything `reader` reads, streaming, in batches small enough to stay in
    /// the cache between the reader and the model, with the reader coalescing store runs
    /// when this replayer takes them whole. `continuing` is asked after every 4,096
    /// batches; false stops the replay (it returns false, the result incomplete).
    public func apply(_ reader: TraceReader, continuing: () -> Bool = { true }) throws(TraceError) -> Bool {
        reader.coalescesStoreRuns = acceptsStoreRuns
        var batch = EventBatch()
        var batches = 0
        while try reader.read(into: &batch, max: 512) {
            apply(batch)
            batches &+= 1
            if batches & 4095 == 0 && !continuing() { return false }
        }
        return true
    }

    /// Whether `apply` takes a coalesced run of stores (`Event.runLength`) whole: the
    /// per-store paths (per-cut counts, an observer that sees stores) apply its stores
    /// one by one, with the same verdicts, so a reader should coalesce only when this is
    /// true (`TraceReader.coalescesStoreRuns`).
    public var acceptsStoreRuns: Bool { !options.recordCuts && observer?.observesStores != true }

    @inline(never)
    private func applyOther(_ e: Event) {
        if e.runLength != 1 {
            e.forEachMember { applyOther($0) }
            return
        }
        if e.thread != activeThread && e.kind != .stackDefinition { switchThread(to: e.thread) }
        switch e.kind {
        case .store, .ntstore:
            if checkBounds && (e.address < boundsLo || e.address - boundsLo > boundsLength
                               || e.size > boundsLength - (e.address - boundsLo)) {
                outOfBounds(e)
            }
            model.store(e.address, e.size, seq: e.seq, stack: e.stack, nonTemporal: e.kind == .ntstore)
        case .clwb, .clflushopt, .clflush:
            switch model.writeBack(e.address, kind: e.kind, seq: e.seq) {
            case .notPmem, .wroteBack: break
            case .redundant: flushNote(.redundantFlush, e)
            case .volatile, .eadr: flushNote(.unnecessaryFlush, e)
            }
        case .sfence, .mfence, .fence:
            model.fence(seq: e.seq)
            if !awaitingDrain.isEmpty { drain(at: e) }
        case .wpqflush:
            model.wpqFlush(seq: e.seq)
            lastHint = e.seq
        case .opBegin:
            let op = OpRecord(e)
            latest = op
            opCount += 1
            checkBounds = op.contract != .none
            if checkBounds { judged = true }
            boundsLo = op.dst
            boundsLength = op.length
            openFindings = findings.count
        case .opEnd:
            if var op = latest, op.id == e.op {
                op.end = e.seq
                op.ended = true
                latest = op
                if options.keepOps { ops.append(op.info) }
                for i in openFindings..<findings.count where findings[i].op?.id == op.id { findings[i].op?.end = e.seq }
                opEnded(op, at: e)
            }
            checkBounds = false
        case .durable:
            judged = true
            let last = e.address &+ (e.size - 1)
            var ranges = risks(e.address, last, op: nil, states: .atRisk)
            model.forEachUntrackedPiece(e.address, last) { first, pieceLast in
                ranges.append(ByteRange(start: first, length: pieceLast - first + 1, position: nil, state: .outside,
                                        event: nil, nonTemporal: false, stack: 0, via: nil, lineSize: lineSize,
                                        missing: .pmemRecord))
            }
            ranges.sort { $0.start < $1.start }
            report(.notDurable, op: nil, at: e, ranges: ranges)
        case .pmem:
            model.addRange(PmemRange(base: e.address, length: e.size, isVolatile: e.isVolatile))
        case .pmemRelease:
            model.removeRange(base: e.address, length: e.size)
        case .mark:
            break
        case .stackDefinition:
            return
        }
        events += 1
        if options.recordCuts { cuts.append(model.counts) }
    }

    private func opEnded(_ op: OpRecord, at e: Event) {
        switch op.contract {
        case .none:
            break
        case .persist:
            report(.notDurable, op: op, at: e, ranges: risks(op, states: .atRisk))
        case .flushcache:
            var waiting = op
            if domain != .eadr {
                let dirty = risks(op, states: .dirty)
                report(.dirtyAtReturn, op: op, at: e, ranges: dirty)
                waiting.cleanAtReturn = dirty.isEmpty
            }
            awaitingDrain.append(waiting)
        }
    }

    /// A fence of the active thread: the drain point of every flushcache op of that
    /// thread waiting for one (in wpq, of those followed by a flush-hint write).
    private func drain(at e: Event) {
        if domain != .wpq && model.liveLines == 0 {
            // Nothing is at risk anywhere: every waiting op is durable.
            awaitingDrain.removeAll(keepingCapacity: true)
            return
        }
        if domain != .wpq {
            for op in awaitingDrain {
                // A fence right after the return, with one thread: only dirty bytes can be
                // at risk now, and the op's range had none when it returned.
                if op.cleanAtReturn && e.seq == op.end &+ 1 && !model.multi { continue }
                report(.notDurable, op: op, at: e, ranges: risks(op, states: .atRisk))
            }
            // Mostly the one op that just returned: removeLast costs less than the general removal.
            if awaitingDrain.count == 1 { awaitingDrain.removeLast() } else { awaitingDrain.removeAll(keepingCapacity: true) }
            return
        }
        var still: [OpRecord] = []
        for op in awaitingDrain {
            guard let hint = lastHint, hint > op.end else {
                still.append(op)
                continue
            }
            report(.notDurable, op: op, at: e, ranges: risks(op, states: .atRisk))
        }
        awaitingDrain = still
    }

    @inline(never)
    private func outOfBounds(_ e: Event) {
        guard let op = latest else { return }
        var ranges: [ByteRange] = []
        let last = e.address &+ (e.size - 1)
        let state: ByteState = e.kind == .ntstore ? .wc : .dirty
        model.forEachPmemPiece(e.address, last) { first, pieceLast, _ in
            // The parts of this pmem piece outside [dst, dst+len).
            func add(_ a: UInt64, _ b: UInt64) {
                if a <= b {
                    ranges.append(ByteRange(start: a, length: b - a + 1, position: .outside, state: state, event: e.seq,
                                            nonTemporal: e.kind == .ntstore, stack: e.stack, via: nil, lineSize: lineSize,
                                            missing: .inBounds))
                }
            }
            if op.length == 0 {
                add(first, pieceLast)
                return
            }
            let opLast = op.dst &+ (op.length - 1)
            if first < op.dst { add(first, min(pieceLast, op.dst - 1)) }
            if pieceLast > opLast { add(max(first, opLast + 1), pieceLast) }
        }
        if !ranges.isEmpty { report(.outOfBoundsStore, op: op, at: e, ranges: ranges) }
    }

    private func flushNote(_ rule: Rule, _ e: Event) {
        let line = e.address & ~(lineSize - 1)
        found(Finding(rule: rule, op: currentOp, event: e.seq, cut: e.seq + 1, line: line, stack: e.stack,
                      eventKind: e.kind))
    }

    /// The op open now, whatever its contract (for labelling notes).
    private var currentOp: OpInfo? {
        guard let latest, !latest.ended else { return nil }
        return latest.info
    }

    private func risks(_ op: OpRecord, states: StateSet) -> [ByteRange] {
        guard op.length > 0 else { return [] }
        return risks(op.dst, op.dst &+ (op.length - 1), op: op, states: states)
    }

    /// At-risk bytes of [first, last] as ranges split at the op's head/body/tail edges.
    private func risks(_ first: UInt64, _ last: UInt64, op record: OpRecord?, states: StateSet) -> [ByteRange] {
        var out: [ByteRange] = []
        let runs = model.risks(first, last, states: states)
        if runs.isEmpty { return out }
        let op = record?.info
        for run in runs {
            var pieces: [(UInt64, UInt64)] = [(run.start, run.length)]
            if let op {
                let (headEnd, tailStart) = op.positionBoundaries
                for cut in [headEnd, tailStart] {
                    pieces = pieces.flatMap { (s, n) -> [(UInt64, UInt64)] in
                        cut > s && cut - s < n ? [(s, cut - s), (cut, n - (cut - s))] : [(s, n)]
                    }
                }
            }
            for (s, n) in pieces {
                let missing = Missing(atRisk: run.state)
                let position = op.map { $0.position(of: s) }
                if var prev = out.last, prev.start &+ prev.length == s, prev.state == run.state, prev.event == run.store,
                   prev.position == position, prev.stack == run.stack, prev.via == run.via {
                    prev.length += n
                    out[out.count - 1] = prev
                } else {
                    out.append(ByteRange(start: s, length: n, position: position, state: run.state, event: run.store,
                                         nonTemporal: run.nonTemporal, stack: run.stack, via: run.via, lineSize: lineSize,
                                         missing: missing))
                }
            }
        }
        return out
    }

    private func report(_ rule: Rule, op record: OpRecord?, at e: Event?, ranges: [ByteRange]) {
        guard !ranges.isEmpty else { return }
        let op = record?.info
        let bytes = ranges.reduce(0) { $0 + $1.length }
        let kept = Array(ranges.prefix(options.maxRangesPerFinding))
        let cut = e.map { $0.seq + 1 } ?? events
        found(Finding(rule: rule, op: op, event: e?.seq, cut: cut, ranges: kept,
                      omittedRanges: ranges.count - kept.count, bytes: bytes, stack: e?.stack ?? 0,
                      eventKind: e?.kind))
    }

    private func found(_ f: Finding) {
        if findings.count < options.maxFindings {
            findings.append(f)
        } else {
            omitted[f.severity, default: 0] += 1
        }
        observer?.replayer(self, found: f)
    }

    /// Ends the replay: flushcache ops with no drain point are judged at the end of the
    /// trace. `names` resolves op names (`TraceReader.names`).
    public func finish(names: [String] = []) -> ReplayResult {
        var waiting = awaitingDrain
        for (_, t) in parked { waiting += t.awaitingDrain }
        if !parked.isEmpty { waiting.sort { $0.end < $1.end } }
        for op in waiting {
            found(Finding(rule: .missingDrain, op: op.info, event: nil, cut: events))
            report(.notDurable, op: op, at: nil, ranges: risks(op, states: .atRisk))
        }
        awaitingDrain.removeAll()
        for k in parked.keys { parked[k]?.awaitingDrain.removeAll() }
        func named(_ op: OpInfo) -> OpInfo {
            var op = op
            if op.nameIndex > 0 && Int(op.nameIndex) <= names.count { op.name = names[Int(op.nameIndex) - 1] }
            return op
        }
        let ops = self.ops.map(named)
        let findings = self.findings.map { f -> Finding in
            var f = f
            f.op = f.op.map(named)
            return f
        }
        let result = ReplayResult(domain: domain, lineSize: lineSize, events: events, findings: findings, ops: ops,
                                  opCount: opCount, cuts: options.recordCuts ? cuts : nil, peakLiveLines: model.peakLive,
                                  checkedAnything: judged, storesOutsidePmem: model.storesOutside,
                                  omittedFindings: omitted)
        observer?.replayFinished(self, result: result)
        return result
    }

    /// The state of one byte now (for explain and tests).
    public func state(of address: UInt64) -> ByteState { model.state(of: address) }
    /// At-risk bytes by state now (kept up to date only with `ReplayOptions.countAtRisk`,
    /// `recordCuts`, or an observer whose `needsAtRiskCounts` is true).
    public var counts: CutCounts { model.counts }
    /// The thread of the latest event (for observers: `Event.thread` of the event just
    /// applied).
    public var thread: UInt32 { activeThread }
    /// Whether events of more than one thread have been applied while bytes were at
    /// risk (the per-thread rules then apply).
    public var isMultithreaded: Bool { model.multi }
}

extension Replayer {
    /// Replays a whole in-memory trace.
    public static func replay(_ trace: Trace, options: ReplayOptions = ReplayOptions()) -> ReplayResult {
        let r = Replayer(header: trace.header, options: options)
        r.apply(trace.batch)
        return r.finish(names: trace.names)
    }

    /// Replays a trace file, streaming.
    public static func replay(file: String, options: ReplayOptions = ReplayOptions()) throws(TraceError) -> (ReplayResult, TraceReader) {
        try replay(reader: try TraceReader(path: file), options: options)
    }

    /// Replays what a reader reads, streaming.
    public static func replay(reader: TraceReader, options: ReplayOptions = ReplayOptions()) throws(TraceError) -> (ReplayResult, TraceReader) {
        let r = Replayer(header: reader.header, options: options)
        _ = try r.apply(reader)
        return (r.finish(names: reader.names), reader)
    }
}
