import PowercutModel
import PowercutTrace

/// Which cuts are checked.
public enum CutSelection: String, Sendable, CaseIterable {
    /// Just before each event that guarantees some write, and the end: every image of
    /// every cut appears at one of these.
    case fences
    /// Just after each `mark` record, and the end.
    case marks
    /// Just after each op's drain point (a flushcache op's first fence of its thread at
    /// or after its end, in `wpq` after a flush hint; any other op's end), and the end.
    case ops
    /// Every cut point.
    case all
}

/// Watches a replay and keeps, per line of tracked memory, the writes that may or may
/// not persist (crash-images rules: per domain, per thread), and hands the images of
/// each checked cut to `onCut`. It is a `ReplayObserver`: the replayer drives it, and
/// it keeps only what images need (writes, guaranteed prefixes), not byte states.
public final class ImageTracker: ReplayObserver {
    public let layout: ImageLayout
    public let selection: CutSelection
    public let plan: ImagePlan
    /// Called at each checked cut; an error stops the replay's use of the tracker.
    public var onCut: (CutImages) throws(CrashError) -> Void

    /// The first error (a store without data, a refused cut); later events are ignored.
    public private(set) var error: CrashError?
    public private(set) var cutsTaken = 0

    private var domain: Domain = .adr
    private var strictClflush = false
    private var ntEvicts = false
    private let lineSize: UInt64

    private var lines: [UInt64: LineState] = [:]
    /// Lines with writes still at risk (or not folded yet).
    private var variableLines = Set<UInt64>()
    /// Lines that hold no tracked byte (so a store there is skipped quickly).
    private var untrackedLines = Set<UInt64>()
    /// Per thread: unfenced write-backs (line -> cached writes they carry).
    private var writeBacks: [UInt32: [UInt64: Int]] = [:]
    /// Per thread: non-temporal writes not yet fenced (line, event).
    private var ntPending: [UInt32: [(UInt64, UInt64)]] = [:]
    /// eadr, per thread: the latest cached write of that thread per line.
    private var eadrPending: [UInt32: [UInt64: Int]] = [:]
    /// wpq: lines with a queued prefix beyond the guaranteed one, queued NT writes, and
    /// what the latest flush hint covers (waiting for a fence).
    private var queuedLines = Set<UInt64>()
    private var queuedNT: [(UInt64, UInt64)] = []
    private var hintLines: [UInt64: Int] = [:]
    private var hintNT: [(UInt64, UInt64)] = []
    private var hintPending = false
    /// ops: each op's thread; per thread, ops waiting for their drain point (saw a hint).
    private var opThreads: [UInt64: (thread: UInt32, contract: Contract)] = [:]
    private var awaitingDrain: [UInt32: [Bool]] = [:]

    /// The ranges tracked now (indices into `layout.ranges`, by address), and the
    /// next range declared between events.
    private var active: [Int]
    private var nextDeclared: Int
    /// The set of tracked ranges changed since the previous checked cut.
    private var rangesChanged = false

    private var lastEvent: Event?
    private var lastCut: UInt64?
    /// The previous checked cut, its lines' contents, and what changed since.
    private var previous: PreviousCut?
    private var previousContents: [UInt64: Set<UInt64>?] = [:]
    private var previousNewest: [UInt64: UInt64] = [:]
    private var previousVariable = Set<UInt64>()
    private var touchedSincePrevious = Set<UInt64>()

    public init(layout: ImageLayout, selection: CutSelection = .fences, plan: ImagePlan = ImagePlan(),
                onCut: @escaping (CutImages) throws(CrashError) -> Void) {
        self.layout = layout
        self.selection = selection
        self.plan = plan
        self.onCut = onCut
        lineSize = UInt64(layout.lineSize)
        active = Array(0..<layout.headerRanges)
        nextDeclared = layout.headerRanges
    }

    public func replayStarted(_ replayer: Replayer) {
        domain = replayer.domain
        strictClflush = replayer.options.strictClflush
        ntEvicts = replayer.options.ntEvicts
    }

    public func replayer(_ replayer: Replayer, applied e: Event, data: ArraySlice<UInt8>?) {
        guard error == nil else { return }
        if selection == .all || (selection == .fences && guarantees(e)) {
            takeCut(e.seq, after: e)
        }
        apply(e, data: data)
        lastEvent = e
        if error == nil {
            switch selection {
            case .marks where e.kind == .mark: takeCut(e.seq + 1, after: nil)
            case .ops where drainPoint(e): takeCut(e.seq + 1, after: nil)
            default: break
            }
        }
    }

    public func replayFinished(_ replayer: Replayer, result: ReplayResult) {
        guard error == nil else { return }
        takeCut(result.events, after: nil)
    }

    // MARK: what an event does to the writes

    private func line(_ address: UInt64) -> LineState? {
        if let l = lines[address] { return l }
        if untrackedLines.contains(address) { return nil }
        let runs = layout.trackedRuns(line: address, active: active)
        if runs.isEmpty {
            untrackedLines.insert(address)
            return nil
        }
        let l = LineState(address: address, runs: runs, initial: layout.initialContent(line: address, runs: runs))
        lines[address] = l
        return l
    }

    /// The event makes some write guaranteed (so the cut just before it is checked).
    func guarantees(_ e: Event) -> Bool {
        switch e.kind {
        case .sfence, .mfence, .fence:
            if domain == .wpq {
                guard hintPending else { return false }
                if hintLines.contains(where: { (lines[$0.key]?.guaranteed ?? Int.max) < $0.value }) { return true }
                return hintNT.contains { p in lines[p.0]?.writes.contains { $0.seq == p.1 && $0.nonTemporal && !$0.ntGuaranteed } ?? false }
            }
            if !(ntPending[e.thread]?.isEmpty ?? true) { return true }
            let pending = domain == .eadr ? eadrPending[e.thread] : writeBacks[e.thread]
            return pending?.contains { (lines[$0.key]?.guaranteed ?? Int.max) < $0.value } ?? false
        case .clflush:
            guard domain == .adr && !strictClflush, let l = lines[e.address & ~(lineSize - 1)] else { return false }
            return l.guaranteed < l.cachedTotal
        default:
            return false
        }
    }

    private func apply(_ e: Event, data: ArraySlice<UInt8>?) {
        switch e.kind {
        case .store, .ntstore:
            store(e, data: data)
        case .clwb, .clflushopt:
            writeBack(e)
        case .clflush:
            guard domain != .eadr else { return }
            if strictClflush { writeBack(e); return }
            guard let l = lines[e.address & ~(lineSize - 1)] else { return }
            if domain == .adr {
                l.guaranteed = max(l.guaranteed, l.cachedTotal)
                fold(l)
            } else {
                l.queued = max(l.queued, l.cachedTotal)
                if l.queued > l.guaranteed { queuedLines.insert(l.address) }
            }
        case .sfence, .mfence, .fence:
            fence(e.thread)
        case .wpqflush:
            guard domain == .wpq else { return }
            hintLines = [:]
            for a in queuedLines {
                if let l = lines[a], l.queued > l.guaranteed { hintLines[a] = l.queued }
            }
            hintNT = queuedNT
            hintPending = true
            for k in awaitingDrain.keys { awaitingDrain[k] = awaitingDrain[k]!.map { _ in true } }
        case .opBegin:
            opThreads[e.op] = (e.thread, e.contract)
        case .opEnd:
            break
        case .pmem:
            if !e.isVolatile && e.size > 0 { declare(e) }
        case .pmemRelease:
            release(e)
        case .durable, .mark, .stackDefinition:
            break
        }
    }

    /// A range declared between events joins the image from this event on.
    private func declare(_ e: Event) {
        let i = nextDeclared
        guard i < layout.ranges.count, layout.ranges[i].base == e.address, layout.ranges[i].length == e.size else {
            fail(.system, "event #\(e.seq) declares pmem \(hex(e.address)) \(e.size), which the layout did not list")
            return
        }
        nextDeclared += 1
        // Only a line shared with another tracked range can already hold state.
        for a in edgeLines(e.address, e.size) where lines[a] != nil {
            fail(.badData, "event #\(e.seq) declares pmem \(hex(e.address)) \(e.size), which shares cache line \(hex(a)) with a tracked range already written: images need each line's ranges fixed while it is written (align ranges to cache lines)")
            return
        }
        active.append(i)
        active.sort { layout.ranges[$0].base < layout.ranges[$1].base }
        untrackedLines.removeAll()
        rangesChanged = true
    }

    /// A released range and its lines leave the image from this event on.
    private func release(_ e: Event) {
        guard let k = active.firstIndex(where: { layout.ranges[$0].base == e.address && layout.ranges[$0].length == e.size }) else { return }
        let i = active[k]
        let r = layout.ranges[i]
        for a in edgeLines(e.address, e.size) {
            if let l = lines[a], l.runs.contains(where: { $0.range != i }) {
                fail(.badData, "event #\(e.seq) releases pmem \(hex(e.address)) \(e.size), which shares cache line \(hex(a)) with another tracked range already written: images need each line's ranges fixed while it is written (align ranges to cache lines)")
                return
            }
        }
        active.remove(at: k)
        let first = r.base & ~(lineSize - 1), last = (r.end &- 1) & ~(lineSize - 1)
        func gone(_ a: UInt64) -> Bool { a >= first && a <= last }
        for a in Array(lines.keys) where gone(a) { lines[a] = nil }
        variableLines = variableLines.filter { !gone($0) }
        untrackedLines.removeAll()
        for t in Array(writeBacks.keys) { writeBacks[t] = writeBacks[t]!.filter { !gone($0.key) } }
        for t in Array(eadrPending.keys) { eadrPending[t] = eadrPending[t]!.filter { !gone($0.key) } }
        for t in Array(ntPending.keys) { ntPending[t] = ntPending[t]!.filter { !gone($0.0) } }
        queuedLines = queuedLines.filter { !gone($0) }
        queuedNT.removeAll { gone($0.0) }
        hintLines = hintLines.filter { !gone($0.key) }
        hintNT.removeAll { gone($0.0) }
        previousContents = previousContents.filter { !gone($0.key) }
        previousNewest = previousNewest.filter { !gone($0.key) }
        previousVariable = previousVariable.filter { !gone($0) }
        touchedSincePrevious = touchedSincePrevious.filter { !gone($0) }
        rangesChanged = true
    }

    /// The first and last lines of [base, base + size) when they hold other bytes too.
    private func edgeLines(_ base: UInt64, _ size: UInt64) -> [UInt64] {
        var out: [UInt64] = []
        if base & (lineSize - 1) != 0 { out.append(base & ~(lineSize - 1)) }
        let end = base &+ size
        if end & (lineSize - 1) != 0 { out.append(end & ~(lineSize - 1)) }
        return out
    }

    private func store(_ e: Event, data: ArraySlice<UInt8>?) {
        guard e.size > 0 else { return }
        var address = e.address
        var done: UInt64 = 0
        while done < e.size {
            let lineAddress = address & ~(lineSize - 1)
            let n = min(e.size - done, lineAddress &+ lineSize &- address)
            if let l = line(lineAddress) {
                let offset = Int(address - lineAddress)
                if l.tracked[offset..<offset + Int(n)].contains(true) {
                    guard let data else {
                        fail(.badData, "event #\(e.seq) (\(e.kind.keyword) \(hex(e.address)) \(e.size)) writes tracked memory without data=: images need the bytes written (record with --data)")
                        return
                    }
                    capturePrevious(l)
                    var bytes = Array(data[data.startIndex + Int(done)..<data.startIndex + Int(done + n)])
                    // Untracked bytes of the line stay zero in every image.
                    for i in bytes.indices where !l.tracked[offset + i] { bytes[i] = 0 }
                    var w = Write(seq: e.seq, thread: e.thread, stack: e.stack, nonTemporal: e.kind == .ntstore,
                                  offset: offset, bytes: bytes)
                    l.add(w)
                    variableLines.insert(lineAddress)
                    w = l.writes[l.writes.count - 1]
                    touchedSincePrevious.insert(lineAddress)
                    if w.nonTemporal {
                        ntPending[e.thread, default: []].append((lineAddress, e.seq))
                        if ntEvicts && domain != .eadr && l.cachedTotal > 0 {
                            writeBacks[e.thread, default: [:]][lineAddress] = max(writeBacks[e.thread]?[lineAddress] ?? 0, l.cachedTotal)
                        }
                    } else if domain == .eadr {
                        eadrPending[e.thread, default: [:]][lineAddress] = w.cachedIndex
                    }
                }
            }
            done += n
            address &+= n
        }
    }

    private func writeBack(_ e: Event) {
        guard domain != .eadr, let l = lines[e.address & ~(lineSize - 1)], l.cachedTotal > 0 else { return }
        writeBacks[e.thread, default: [:]][l.address] = max(writeBacks[e.thread]?[l.address] ?? 0, l.cachedTotal)
    }

    private func fold(_ l: LineState) {
        l.fold()
        if l.writes.isEmpty { variableLines.remove(l.address) }
    }

    private func markNT(_ p: (UInt64, UInt64), guaranteed: Bool) {
        guard let l = lines[p.0], let i = l.writes.firstIndex(where: { $0.nonTemporal && $0.seq == p.1 }) else { return }
        if guaranteed { l.writes[i].ntGuaranteed = true } else { l.writes[i].fenced = true }
        l.version += 1
    }

    private func fence(_ t: UInt32) {
        var affected = Set<UInt64>()
        if domain == .wpq {
            if hintPending {
                for (a, q) in hintLines {
                    if let l = lines[a], q > l.guaranteed { l.guaranteed = q; l.version += 1; affected.insert(a) }
                }
                for p in hintNT { markNT(p, guaranteed: true); affected.insert(p.0) }
                let done = Set(hintNT.map { "\($0.0):\($0.1)" })
                queuedNT.removeAll { done.contains("\($0.0):\($0.1)") }
                hintLines = [:]
                hintNT = []
                hintPending = false
            }
            for (a, c) in writeBacks[t] ?? [:] {
                if let l = lines[a], c > l.queued { l.queued = c; queuedLines.insert(a) }
            }
            for p in ntPending[t] ?? [] { markNT(p, guaranteed: false); queuedNT.append(p) }
            queuedLines = queuedLines.filter { lines[$0].map { $0.queued > $0.guaranteed } ?? false }
        } else {
            let pending = domain == .eadr ? eadrPending[t] : writeBacks[t]
            for (a, c) in pending ?? [:] {
                if let l = lines[a], c > l.guaranteed { l.guaranteed = c; l.version += 1; affected.insert(a) }
            }
            for p in ntPending[t] ?? [] { markNT(p, guaranteed: true); affected.insert(p.0) }
        }
        writeBacks[t] = nil
        eadrPending[t] = nil
        ntPending[t] = nil
        for a in affected { if let l = lines[a] { fold(l) } }
    }

    /// A fence that is the drain point of an op of its thread, or an op end that is one.
    private func drainPoint(_ e: Event) -> Bool {
        switch e.kind {
        case .opEnd:
            // Ops of other contracts are done at their end; flushcache ops at their drain fence.
            let op = opThreads.removeValue(forKey: e.op) ?? (e.thread, .flushcache)
            guard op.contract == .flushcache else { return true }
            awaitingDrain[op.thread, default: []].append(false)
            return false
        case .sfence, .mfence, .fence:
            guard var waiting = awaitingDrain[e.thread], !waiting.isEmpty else { return false }
            let before = waiting.count
            waiting.removeAll { domain != .wpq || $0 }
            awaitingDrain[e.thread] = waiting
            return waiting.count < before
        default:
            return false
        }
    }

    private func fail(_ kind: CrashError.Kind, _ message: String) {
        if error == nil { error = CrashError(kind, message) }
    }

    // MARK: cuts

    /// Before a line changes for the first time since the previous checked cut, keep
    /// its one content there (lines that varied there were kept when it was taken).
    private func capturePrevious(_ l: LineState) {
        guard previous != nil, !touchedSincePrevious.contains(l.address), !previousVariable.contains(l.address) else { return }
        let h = contentHash(l.newest)
        previousContents[l.address] = Set([h])
        previousNewest[l.address] = h
    }

    private func takeCut(_ cut: UInt64, after: Event?) {
        guard lastCut != cut else { return }
        lastCut = cut
        // No range tracked: there is no image at this cut.
        guard !active.isEmpty else { return }
        do {
            let images = try buildCut(cut, after: after)
            cutsTaken += 1
            try onCut(images)
            rememberAsPrevious(images)
            rangesChanged = false
        } catch let e {
            fail(e.kind, e.message)
        }
    }

    private func buildCut(_ cut: UInt64, after: Event?) throws(CrashError) -> CutImages {
        var resets: [LineImage] = []
        for a in touchedSincePrevious.union(previousVariable).sorted() {
            if let l = lines[a] { resets.append(LineImage(address: a, runs: l.runs, content: l.newest)) }
        }
        var variable: [VariableLine] = []
        var digits: [Factor] = []
        var constantsWerePossible = true
        var constantDeviations = 0
        let candidates = variableLines.sorted().compactMap { lines[$0] }
        var variableAddresses = Set<UInt64>()
        for l in candidates {
            var factors: [Factor]
            if let cached = l.factors, cached.version == l.version {
                factors = cached.factors
            } else {
                factors = try LineFactors.build(l)
                l.factors = (l.version, factors)
            }
            if factors.isEmpty { continue }
            variableAddresses.insert(l.address)
            let index = variable.count
            for i in factors.indices { factors[i].line = index }
            var count: UInt64 = 1
            for f in factors {
                let (p, o) = count.multipliedReportingOverflow(by: UInt64(f.count))
                count = o ? UInt64.max : p
            }
            let touched = previous != nil && touchedSincePrevious.contains(l.address)
            let prevSet = touched ? (previousContents[l.address] ?? nil) : nil
            variable.append(VariableLine(address: l.address, runs: l.runs, newest: l.newest, writes: l.writes,
                                         guaranteed: l.guaranteed, cachedTotal: l.cachedTotal,
                                         digits: digits.count..<digits.count + factors.count, count: count,
                                         newestHash: contentHash(l.newest), touchedSincePrevious: touched,
                                         previousContents: prevSet, previousNewest: previousNewest[l.address] ?? 0))
            digits += factors
        }
        if previous != nil {
            for a in touchedSincePrevious where !variableAddresses.contains(a) {
                guard let l = lines[a] else { continue }
                let h = contentHash(l.newest)
                if let known = previousContents[a] ?? nil, known.contains(h) {
                    if previousNewest[a] != h { constantDeviations += 1 }
                } else {
                    constantsWerePossible = false
                }
            }
        }
        let before: Event? = cut > 0 && lastEvent?.seq == cut - 1 ? lastEvent : nil
        // Images of a different set of ranges are different images: nothing is skipped.
        let images = CutImages(cut: cut, before: before, after: after, resets: resets, lines: variable, digits: digits,
                         plan: plan, previous: rangesChanged ? nil : previous, constantsWerePossible: constantsWerePossible,
                         constantDeviations: constantDeviations, lineSize: layout.lineSize)
        images.ranges = active
        return images
    }

    /// The contents sets one line may keep for the next cut (larger lines are not known).
    static let maxKeptContents: UInt64 = 4096

    private func rememberAsPrevious(_ images: CutImages) {
        previous = PreviousCut(cut: images.cut, complete: images.completeForNext,
                               depth: images.enumeration == .every ? nil : {
                                   if case .depth(let d) = images.enumeration { return d } else { return nil }
                               }())
        previousContents = [:]
        previousNewest = [:]
        previousVariable = []
        touchedSincePrevious = []
        for line in images.lines {
            previousVariable.insert(line.address)
            previousNewest[line.address] = line.newestHash
            if line.count <= Self.maxKeptContents {
                var set = Set<UInt64>([line.newestHash])
                var values = [Int](repeating: 0, count: line.digits.count)
                outer: while true {
                    var h = line.newestHash
                    for (i, d) in line.digits.enumerated() {
                        h = h &+ images.digits[d].hashes[values[i]] &- images.digits[d].hashes[0]
                    }
                    set.insert(h)
                    var i = 0
                    while i < values.count {
                        values[i] += 1
                        if values[i] < images.digits[line.digits.lowerBound + i].count { continue outer }
                        values[i] = 0
                        i += 1
                    }
                    break
                }
                previousContents[line.address] = .some(set)
            } else {
                previousContents[line.address] = .some(nil)
            }
        }
    }
}
