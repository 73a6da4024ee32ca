import PowercutModel
import PowercutTrace

// `powercut explain`: the story of chosen bytes across the cut points.
//
// The trace is replayed twice. The first replay finds the findings (numbered as
// `powercut check` lists them) and the ops. The second walks the events one by one and,
// after every event that concerns the chosen bytes' cache lines, asks the replayer for
// the state of each byte of those lines. The events that concern them ("relevant"):
// stores and non-temporal stores that touch the lines, write-backs of the lines, fences
// and flush-hint writes while some byte of the lines is at risk, the markers of the ops
// whose destination meets the lines, `durable` assertions over them, and the event where
// durability was promised. Every other event leaves those bytes as they were, so runs of
// them are only counted.

/// Which bytes to explain.
public enum ExplainSelector: Equatable, Sendable {
    /// The first error finding (the default).
    case firstError
    /// The Nth finding, from 1, in the order `powercut check` lists them.
    case finding(Int)
    /// One byte of pmem.
    case byte(UInt64)
    /// An op's destination.
    case op(UInt64)
}

/// Why a selection cannot be explained (usage errors: the trace itself is fine).
public enum ExplainError: Error, Equatable, CustomStringConvertible {
    case noSuchFinding(asked: Int, count: Int)
    case byteOutsidePmem(UInt64, ranges: [PmemRange])
    case noSuchOp(UInt64, known: [UInt64])

    public var description: String {
        switch self {
        case .noSuchFinding(let n, let count):
            if count == 0 { return "--finding \(n): the trace has no findings" }
            return "--finding \(n): the trace has \(count) finding\(count == 1 ? "" : "s") (choose 1-\(count); `powercut check` lists them in this order)"
        case .byteOutsidePmem(let a, let ranges):
            let list = ranges.map { "0x\(hex($0.base))-0x\(hex($0.end &- 1))" }.joined(separator: ", ")
            return "--byte 0x\(hex(a)): not in any pmem range of the trace" + (ranges.isEmpty ? " (it declares none)" : " (\(list))")
        case .noSuchOp(let id, let known):
            let list = known.prefix(20).map(String.init).joined(separator: ", ") + (known.count > 20 ? ", …" : "")
            return "--op \(id): the trace has no op \(id)" + (known.isEmpty ? " (it has no ops)" : " (ops: \(list))")
        }
    }
}

/// What a row of bytes holds at one cut point; ordered from harmless to worst.
public enum CellState: Int, Comparable, Sendable, CaseIterable {
    /// Not stored to yet.
    case untouched
    case durable
    /// Stored to, but not pmem the trace declares (never durable).
    case outside
    case queued
    case flushing
    case wc
    case dirty

    public init(_ s: ByteState) {
        switch s {
        case .durable: self = .durable
        case .dirty: self = .dirty
        case .flushing: self = .flushing
        case .wc: self = .wc
        case .queued: self = .queued
        case .outside: self = .outside
        }
    }

    public static func < (a: CellState, b: CellState) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .untouched: "untouched"
        case .durable: "durable"
        case .outside: "not pmem"
        case .queued: "queued"
        case .flushing: "flushing"
        case .wc: "wc"
        case .dirty: "dirty"
        }
    }

    public var isAtRisk: Bool { self == .dirty || self == .flushing || self == .wc || self == .queued }
}

/// A run of bytes of one line with one state after an event.
public struct StateRun: Equatable, Sendable {
    public var start: UInt64
    public var length: UInt64
    public var state: CellState
    /// The stores that wrote the bytes' newest values: the first and the last (at-risk runs only).
    public var store: UInt64?
    public var lastStore: UInt64?
    /// Whether the run is among the chosen bytes (marked only in lines that hold others too).
    public var chosen: Bool
}

/// At-risk bytes at the promise, with what left them there.
public struct RiskSpan: Equatable, Sendable {
    public var start: UInt64
    public var length: UInt64
    public var position: Position?
    public var state: ByteState
    public var store: UInt64?
    public var nonTemporal: Bool
    public var stack: UInt32
    /// The write-back (flushing) or fence (queued) that moved the bytes last.
    public var via: UInt64?
    public var missing: Missing
}

/// Where durability was promised: the cut point the story ends at.
public struct Promise: Equatable, Sendable {
    /// nil: the end of the trace.
    public var event: UInt64?
    public var cut: UInt64
    /// "the drain point of op 1 (memcpy_flushcache)".
    public var what: String
    /// "the fence at #6", "the return of op 1 at #5", "the end of the trace".
    public var place: String
}

/// A row of the timeline picture: a cache line (or a band of lines) or a run of chosen bytes.
public struct ExplainRow: Equatable, Sendable {
    public var label: String
    /// First and last byte (inclusive).
    public var first: UInt64
    public var last: UInt64
    /// A run of chosen bytes (drawn under its line) rather than a whole line.
    public var isByteRun: Bool
    /// Holds bytes still at risk at the promise.
    public var lost: Bool
}

/// One relevant event of the story.
public struct ExplainStep: Sendable {
    public var event: Event
    /// The record as the text form writes it (without its stack).
    public var record: String
    /// Short words about the event: "the drain point of op 1 — durability promised here".
    public var notes: [String]
    /// Headlines of findings decided at this event.
    public var verdicts: [String]
    /// Lines to show after the event, with their runs.
    public var lines: [(line: UInt64, runs: [StateRun])]
    /// More changed lines than shown.
    public var moreLines: Int
    /// The worst state of each row after the event.
    public var rows: [CellState]
    /// How many of each row's bytes are in each state (indexed by `CellState.rawValue`).
    public var mix: [[Int]]
    /// Rows whose bytes the event stored to or wrote back.
    public var touched: [Bool]
    public var isPromise: Bool
}

/// An item of the story: an event, or a run of events left out.
public enum ExplainItem: Sendable {
    case step(ExplainStep)
    /// Events #first-#last that do not concern the chosen lines (count of them), or
    /// relevant ones left out for length (`elided`); `rows` are the states after them.
    case gap(first: UInt64, last: UInt64, count: Int, elided: Bool, rows: [CellState], mix: [[Int]])
}

/// The story of the chosen bytes, ready for the text, SVG and HTML printers.
public struct Explanation: Sendable {
    public var file: String
    public var domain: Domain
    public var lineSize: UInt64
    public var events: UInt64
    public var modules: [Module]
    public var stacks: [UInt32: [UInt64]]
    /// What is explained, one line: a finding's headline, or "byte 0x…", "op 1 (…)".
    public var title: String
    public var severity: Severity?
    public var finding: Finding?
    /// 1-based, as `powercut check` numbers findings.
    public var findingNumber: Int?
    public var findingCount: Int
    public var op: OpInfo?
    /// The chosen bytes, sorted and merged: (start, length).
    public var chosen: [(start: UInt64, length: UInt64)]
    public var lines: [UInt64]
    public var rows: [ExplainRow]
    public var items: [ExplainItem]
    public var promise: Promise?
    /// Chosen bytes at risk at the promise (or at the end of the trace when there is none).
    public var atRisk: [RiskSpan]
    public var fixes: [String]
    /// Events after the promise, left out of the story.
    public var eventsAfterPromise: UInt64 = 0
    /// Nothing was chosen: no selector and no error finding.
    public var isEmpty: Bool { chosen.isEmpty }
    /// Totals of the trace's findings, for the empty case.
    public var errors = 0, warnings = 0, notes = 0

    public var steps: [ExplainStep] {
        items.compactMap { if case .step(let s) = $0 { s } else { nil } }
    }
}

/// Builds explanations.
public struct Explainer {
    public var options: ReplayOptions
    /// At most this many relevant events are told (the first and last halves); 0: all.
    public var limit: Int
    /// At most this many lines are listed after one event.
    public var linesPerStep = 8
    /// At most this many rows in the picture (lines are banded beyond it).
    public var maxRows = 32

    public init(options: ReplayOptions = ReplayOptions(), limit: Int = 200) {
        self.options = options
        self.limit = limit
    }

    public func explain(_ trace: Trace, file: String, selector: ExplainSelector) throws(ExplainError) -> Explanation {
        var first = options
        first.keepOps = true
        let result = Replayer.replay(trace, options: first)
        let header = trace.header
        let lineSize = header.lineSize
        let pmem = header.pmem.sorted { $0.base < $1.base }
        let numbered = trace.events.filter { $0.kind != .stackDefinition }
        let findings = result.findings
        var ex = Explanation(file: file, domain: result.domain, lineSize: lineSize, events: result.events,
                             modules: header.modules, stacks: trace.stacks, title: "", severity: nil, finding: nil,
                             findingNumber: nil, findingCount: findings.count, op: nil, chosen: [], lines: [], rows: [],
                             items: [], promise: nil, atRisk: [], fixes: [])
        ex.errors = result.errors
        ex.warnings = result.warnings
        ex.notes = result.notes
        let report = TextReport()

        // 1. What to follow.
        var finding: Finding?
        var op: OpInfo?
        var spans: [(UInt64, UInt64)] = []
        func opSpan(_ o: OpInfo) -> [(UInt64, UInt64)] { o.length > 0 ? [(o.dst, o.length)] : [] }
        func pick(_ candidates: [Int]) -> Int? {
            candidates.first { findings[$0].rule == .notDurable } ?? candidates.first
        }
        switch selector {
        case .firstError:
            guard let i = findings.firstIndex(where: { $0.severity == .error }) else { return ex }
            finding = findings[i]
            ex.findingNumber = i + 1
        case .finding(let n):
            guard n >= 1 && n <= findings.count else { throw .noSuchFinding(asked: n, count: findings.count) }
            finding = findings[n - 1]
            ex.findingNumber = n
        case .byte(let a):
            guard pmem.contains(where: { $0.contains(a) }) else { throw .byteOutsidePmem(a, ranges: pmem) }
            spans = [(a, 1)]
            let hits = findings.indices.filter { i in
                findings[i].severity == .error && findings[i].ranges.contains { a >= $0.start && a - $0.start < $0.length }
            }
            if let i = pick(hits) {
                finding = findings[i]
                ex.findingNumber = i + 1
            }
            op = finding?.op ?? result.ops.last { $0.length > 0 && a >= $0.dst && a - $0.dst < $0.length }
            ex.title = "byte 0x\(hex(a))"
        case .op(let id):
            guard let o = result.ops.first(where: { $0.id == id }) else {
                throw .noSuchOp(id, known: result.ops.map(\.id))
            }
            op = o
            spans = opSpan(o)
            let hits = findings.indices.filter { findings[$0].severity == .error && findings[$0].op?.id == id }
            if let i = pick(hits) {
                finding = findings[i]
                ex.findingNumber = i + 1
            }
            ex.title = report.opLabel(o) + ": dst=0x\(hex(o.dst)) len=\(o.length) contract=\(o.contract)"
        }
        let followsFinding: Bool = switch selector {
        case .firstError, .finding: true
        case .byte, .op: false
        }
        if followsFinding, let f = finding {
            // The finding's own bytes; a flush note's line; a missing drain's op.
            op = f.op
            spans = f.ranges.map { ($0.start, $0.length) }
            if spans.isEmpty, let line = f.line { spans = [(line, lineSize)] }
            if spans.isEmpty, let o = f.op { spans = opSpan(o) }
            ex.title = "\(f.severity): \(f.rule.rawValue): \(report.headline(f))"
        }
        ex.finding = finding
        ex.severity = finding?.severity
        ex.op = op
        ex.chosen = merge(spans)
        guard !ex.chosen.isEmpty else { return ex }

        // 2. Where durability was promised.
        ex.promise = promise(finding: finding, op: op, events: numbered, total: result.events, domain: result.domain)

        // 3. The lines and the picture's rows.
        var lineSet = Set<UInt64>()
        for (s, n) in ex.chosen {
            var line = s & ~(lineSize - 1)
            let lastLine = (s &+ n &- 1) & ~(lineSize - 1)
            while true {
                lineSet.insert(line)
                if line >= lastLine { break }
                line += lineSize
            }
        }
        ex.lines = lineSet.sorted()

        // 4. Walk the events.
        // Rows of their own in the picture: the finding's byte ranges (what was lost), or
        // the chosen byte; an op without a finding is shown by its lines alone.
        let runRows: [(UInt64, UInt64)]
        if let f = finding, !f.ranges.isEmpty {
            runRows = f.ranges.compactMap { intersect($0.start, $0.length, ex.chosen) }
        } else if case .op = selector {
            runRows = []
        } else {
            runRows = ex.chosen.map { ($0.start, $0.length) }
        }
        let walk = Walk(explainer: self, trace: trace, numbered: numbered, result: result, ex: ex, pmem: pmem, runRows: runRows)
        walk.run()
        ex.items = walk.items
        ex.rows = walk.rows
        ex.atRisk = walk.atRiskAtPromise
        ex.eventsAfterPromise = walk.eventsAfterPromise
        if let f = finding, f.rule == .notDurable || f.rule == .dirtyAtReturn || f.rule == .outOfBoundsStore {
            // The model's own account, cut to the chosen bytes.
            ex.atRisk = f.ranges.compactMap { r in
                guard let (s, n) = intersect(r.start, r.length, ex.chosen) else { return nil }
                return RiskSpan(start: s, length: n, position: r.position, state: r.state, store: r.event,
                                nonTemporal: r.nonTemporal, stack: r.stack, via: r.via, missing: r.missing)
            }
            walk.markLost(ex.atRisk)
            ex.rows = walk.rows
        }
        ex.fixes = fixes(ex, finding: finding)
        return ex
    }

    /// Sorted, merged spans.
    func merge(_ spans: [(UInt64, UInt64)]) -> [(start: UInt64, length: UInt64)] {
        var out: [(start: UInt64, length: UInt64)] = []
        for (s, n) in spans.sorted(by: { $0.0 < $1.0 }) where n > 0 {
            if let last = out.last, last.start &+ last.length >= s {
                let end = max(last.start &+ last.length, s &+ n)
                out[out.count - 1].length = end - last.start
            } else {
                out.append((s, n))
            }
        }
        return out
    }

    /// The part of [s, s+n) inside the chosen spans (they are one span when it matters:
    /// a finding's own ranges are all chosen).
    func intersect(_ s: UInt64, _ n: UInt64, _ chosen: [(start: UInt64, length: UInt64)]) -> (UInt64, UInt64)? {
        for c in chosen {
            let lo = max(s, c.start), hi = min(s &+ n, c.start &+ c.length)
            if lo < hi { return (lo, hi - lo) }
        }
        return nil
    }

    func promise(finding: Finding?, op: OpInfo?, events: [Event], total: UInt64, domain: Domain) -> Promise? {
        func describe(_ seq: UInt64?, _ what: String) -> Promise {
            guard let seq, Int(seq) < events.count else {
                return Promise(event: nil, cut: total, what: what, place: "the end of the trace")
            }
            let e = events[Int(seq)]
            let place: String
            switch e.kind {
            case .sfence, .mfence, .fence: place = "the fence at #\(seq)"
            case .opEnd: place = "the return of op \(e.op) at #\(seq)"
            case .durable: place = "the durable assertion at #\(seq)"
            case .store, .ntstore: place = "\(e.kind.keyword) #\(seq)"
            case .clwb, .clflushopt, .clflush: place = "the \(e.kind.keyword) at #\(seq)"
            default: place = "#\(seq)"
            }
            return Promise(event: seq, cut: seq + 1, what: what, place: place)
        }
        let label = op.map { TextReport().opLabel($0) } ?? ""
        if let f = finding {
            switch f.rule {
            case .notDurable:
                guard let o = f.op else { return describe(f.event, "a durable assertion over these bytes") }
                if f.event == nil { return describe(nil, "\(label) has no drain point") }
                return describe(f.event, o.contract == .persist ? "a persist routine returns its range durable" : "the drain point of \(label)")
            case .dirtyAtReturn:
                return describe(f.event, "a flushcache routine must return nothing dirty")
            case .missingDrain:
                return describe(nil, "\(label) has no drain point")
            case .outOfBoundsStore:
                return describe(f.event, "a store outside \(label)'s destination")
            case .redundantFlush:
                return describe(f.event, "a write-back of a line with nothing dirty")
            case .unnecessaryFlush:
                return describe(f.event, "a write-back the cache does not need")
            }
        }
        guard let op, let end = op.end else { return nil }
        switch op.contract {
        case .none:
            return nil
        case .persist:
            return describe(end, "a persist routine returns its range durable")
        case .flushcache:
            if domain == .eadr || domain == .adr {
                let fence = events[Int(end)...].first { $0.kind.isFence }
                return describe(fence?.seq, fence == nil ? "\(label) has no drain point" : "the drain point of \(label)")
            }
            var sawHint = false
            for e in events[Int(end)...] {
                if e.kind == .wpqflush { sawHint = true }
                if e.kind.isFence && sawHint { return describe(e.seq, "the drain point of \(label)") }
            }
            return describe(nil, "\(label) has no drain point")
        }
    }

    func fixes(_ ex: Explanation, finding: Finding?) -> [String] {
        var out: [String] = []
        func add(_ s: String) { if !out.contains(s) { out.append(s) } }
        let place = ex.promise?.place ?? "the end of the trace"
        /// A fence is already asked for (missing drain): no per-state fence sentences.
        var fencesDone = false
        let op = ex.op
        if let f = finding {
            let at = f.event.map { "#\($0)" } ?? "the end of the trace"
            switch f.rule {
            case .redundantFlush:
                add("drop the write-back at \(at), or point it at a line that was stored to (line 0x\(hex(f.line ?? 0)) had nothing dirty)")
                return out
            case .unnecessaryFlush:
                add("drop the write-back at \(at): in \(ex.domain) or a volatile range a write-back is overhead")
                return out
            case .missingDrain:
                let end = f.op?.end.map { "#\($0)" } ?? "its return"
                add("add a fence after \(f.op.map { TextReport().opLabel($0) } ?? "the op") returns at \(end) (the caller's drain, e.g. pmem_drain)")
                // That one fence drains every write-back and non-temporal store; only
                // dirty bytes need more.
                if !ex.atRisk.contains(where: { $0.state == .dirty }) { return out }
                fencesDone = true
            case .outOfBoundsStore:
                for r in ex.atRisk {
                    let o = f.op
                    let range = o.map { "[0x\(hex($0.dst)), 0x\(hex($0.dst &+ $0.length)))" } ?? "its destination"
                    add("keep store #\(r.store.map(String.init) ?? "?") inside \(o.map { TextReport().opLabel($0) } ?? "the op")'s destination \(range), or widen the op's len")
                }
                return out
            case .notDurable, .dirtyAtReturn:
                break
            }
        }
        // One fix per line for dirty bytes (a write-back after the line's last store
        // covers the earlier ones), one per state for the others (a fence after the
        // last write-back or non-temporal store covers them all).
        let risky = ex.atRisk.filter { $0.state != .durable }
        func lineText(_ first: UInt64, _ last: UInt64) -> String {
            first == last ? "line 0x\(hex(first))" : "lines 0x\(hex(first))-0x\(hex(last))"
        }
        func latest(_ xs: [UInt64?]) -> String? { xs.compactMap { $0 }.max().map { "#\($0)" } }
        var dirtyLines: [UInt64: [RiskSpan]] = [:]
        for r in risky where r.state == .dirty {
            var line = r.start & ~(ex.lineSize - 1)
            let last = (r.start &+ r.length &- 1) & ~(ex.lineSize - 1)
            while true {
                dirtyLines[line, default: []].append(r)
                if line >= last { break }
                line += ex.lineSize
            }
        }
        // Lines with the same last store share one sentence.
        var byStore: [(store: String, lines: [UInt64], spans: [RiskSpan])] = []
        for line in dirtyLines.keys.sorted() {
            let spans = dirtyLines[line]!
            let st = latest(spans.map(\.store)) ?? "?"
            if let i = byStore.firstIndex(where: { $0.store == st && $0.lines.last.map { $0 + ex.lineSize == line } == true }) {
                byStore[i].lines.append(line)
                byStore[i].spans += spans
            } else {
                byStore.append((st, [line], spans))
            }
        }
        for g in byStore {
            var s = "write back \(lineText(g.lines.first!, g.lines.last!)) after store \(g.store) and before \(place)"
            if let op, op.contract == .flushcache, let end = op.end, ex.promise?.event != end,
               g.spans.contains(where: { r in
                   r.store.map { $0 > op.begin && $0 < end } == true && r.start >= op.dst && r.start - op.dst < op.length
               }) {
                s += " (inside \(TextReport().opLabel(op)), before its return at #\(end): a flushcache routine must return nothing dirty)"
            }
            if ex.domain == .wpq { s += ", with a fence before the flush-hint write" }
            add(s)
        }
        if fencesDone { return out }
        // Write-backs and non-temporal stores need the same thing: one fence after the last.
        let flushing = latest(risky.filter { $0.state == .flushing }.map(\.via))
        let wc = latest(risky.filter { $0.state == .wc }.map(\.store))
        switch (flushing, wc) {
        case let (w?, n?): add("add a fence after write-back \(w) and non-temporal store \(n), before \(place)")
        case let (w?, nil): add("add a fence after write-back \(w), before \(place)")
        case let (nil, n?): add("add a fence after non-temporal store \(n), before \(place)")
        case (nil, nil): break
        }
        let queued = risky.filter { $0.state == .queued }
        if !queued.isEmpty {
            add("add a flush-hint write (wpqflush) and a fence after \(latest(queued.map { $0.via ?? $0.store }) ?? "the fence"), before \(place)")
        }
        for r in risky where r.state == .outside {
            add("declare 0x\(hex(r.start))-0x\(hex(r.start &+ r.length &- 1)) with a pmem record (memory outside pmem is never durable)")
        }
        return out
    }
}

/// The second replay: per-byte states of the chosen lines after each relevant event.
private final class Walk {
    let explainer: Explainer
    let trace: Trace
    let numbered: [Event]
    let result: ReplayResult
    let ex: Explanation
    let lineSize: UInt64
    let replayer: Replayer
    let chosenLines: [UInt64]
    let lineIndex: [UInt64: Int]

    /// Per chosen line, per byte.
    var state: [[CellState]]
    var store: [[UInt64?]]
    var nonTemporal: [[Bool]]
    var via: [[UInt64?]]
    var inPmem: [[Bool]]
    var chosenByte: [[Bool]]
    var lineWorst: [CellState]
    /// Per chosen line, the count of its bytes in each state.
    var lineMix: [[Int]]
    /// Lines with at-risk bytes now.
    var risky = Set<Int>()

    var rows: [ExplainRow] = []
    /// Per row: the lines it covers (index range) or the byte run it is.
    var rowLines: [Range<Int>] = []
    var items: [ExplainItem] = []
    var atRiskAtPromise: [RiskSpan] = []
    var eventsAfterPromise: UInt64 = 0

    /// Op ranges by ID, for the op markers.
    var opRanges: [UInt64: (UInt64, UInt64)] = [:]
    var opNames: [UInt64: OpInfo] = [:]

    init(explainer: Explainer, trace: Trace, numbered: [Event], result: ReplayResult, ex: Explanation, pmem: [PmemRange],
         runRows: [(UInt64, UInt64)]) {
        self.explainer = explainer
        self.trace = trace
        self.numbered = numbered
        self.result = result
        self.ex = ex
        lineSize = ex.lineSize
        replayer = Replayer(header: trace.header, options: explainer.options)
        chosenLines = ex.lines
        var index: [UInt64: Int] = [:]
        for (i, l) in chosenLines.enumerated() { index[l] = i }
        lineIndex = index
        let n = Int(lineSize)
        state = Array(repeating: Array(repeating: .untouched, count: n), count: chosenLines.count)
        store = Array(repeating: Array(repeating: nil, count: n), count: chosenLines.count)
        nonTemporal = Array(repeating: Array(repeating: false, count: n), count: chosenLines.count)
        via = Array(repeating: Array(repeating: nil, count: n), count: chosenLines.count)
        inPmem = chosenLines.map { line in (0..<UInt64(n)).map { b in pmem.contains { $0.contains(line + b) } } }
        chosenByte = chosenLines.map { line in
            (0..<UInt64(n)).map { b in ex.chosen.contains { line + b >= $0.start && line + b - $0.start < $0.length } }
        }
        lineWorst = Array(repeating: .untouched, count: chosenLines.count)
        lineMix = inPmem.map { p in
            var mix = Array(repeating: 0, count: CellState.allCases.count)
            mix[CellState.untouched.rawValue] = p.filter { $0 }.count
            return mix
        }
        for o in result.ops { opNames[o.id] = o }
        buildRows(runRows)
    }

    // MARK: Rows

    func buildRows(_ runRows: [(UInt64, UInt64)]) {
        let lines = chosenLines
        let bandSize = lines.count <= explainer.maxRows ? 1 : (lines.count + explainer.maxRows - 1) / explainer.maxRows
        var i = 0
        while i < lines.count {
            let j = min(lines.count, i + bandSize)
            let first = lines[i], last = lines[j - 1] + lineSize - 1
            let label = j - i == 1 ? "line 0x\(hex(first))" : "lines 0x\(hex(first))-0x\(hex(lines[j - 1])) (\(j - i))"
            rows.append(ExplainRow(label: label, first: first, last: last, isByteRun: false, lost: false))
            rowLines.append(i..<j)
            if bandSize == 1 {
                // Runs of chosen bytes that are not the whole line get rows of their own.
                for (start, length) in runRows where rows.count < 2 * explainer.maxRows {
                    let lo = max(start, first), hi = min(start &+ length, first + lineSize)
                    guard lo < hi, !(lo == first && hi == first + lineSize) else { continue }
                    let pos = ex.op.map { o -> String in
                        let p = o.position(of: lo)
                        return p == .outside ? "" : " \(p.rawValue)"
                    } ?? ""
                    let label = hi - lo == 1 ? "0x\(hex(lo))\(pos)" : "0x\(hex(lo))-0x\(hex(hi - 1))\(pos)"
                    rows.append(ExplainRow(label: label, first: lo, last: hi - 1, isByteRun: true, lost: false))
                    rowLines.append(i..<j)
                }
            }
            i = j
        }
    }

    func rowStates() -> [CellState] {
        rowMix().map { mix in CellState.allCases.last { mix[$0.rawValue] > 0 } ?? .untouched }
    }

    /// Per row, the count of its bytes in each state.
    func rowMix() -> [[Int]] {
        rows.indices.map { r in
            let row = rows[r]
            if !row.isByteRun {
                var sum = Array(repeating: 0, count: CellState.allCases.count)
                for li in rowLines[r] { for k in sum.indices { sum[k] += lineMix[li][k] } }
                return sum
            }
            let li = rowLines[r].lowerBound
            let line = chosenLines[li]
            var mix = Array(repeating: 0, count: CellState.allCases.count)
            for b in Int(row.first - line)...Int(row.last - line) { mix[state[li][b].rawValue] += 1 }
            return mix
        }
    }

    func markLost(_ spans: [RiskSpan]) {
        for r in rows.indices {
            let row = rows[r]
            // A line row is marked only when no run of its own shows the lost bytes.
            let hasRunRows = !row.isByteRun && rows.indices.contains { rows[$0].isByteRun && rowLines[$0] == rowLines[r] }
            rows[r].lost = !hasRunRows && spans.contains { s in
                s.state != .durable && s.start <= row.last && s.start &+ s.length &- 1 >= row.first
            }
        }
    }

    // MARK: The walk

    /// Chosen line indices in [first, last] (addresses).
    func lines(from first: UInt64, to last: UInt64) -> [Int] {
        let lo = first & ~(lineSize - 1), hi = last & ~(lineSize - 1)
        var a = 0, b = chosenLines.count
        while a < b {
            let m = (a + b) / 2
            if chosenLines[m] < lo { a = m + 1 } else { b = m }
        }
        var out: [Int] = []
        while a < chosenLines.count && chosenLines[a] <= hi {
            out.append(a)
            a += 1
        }
        return out
    }

    /// Re-reads the states of a line from the replayer; true when any changed.
    @discardableResult
    func refresh(_ li: Int, by e: Event) -> Bool {
        let line = chosenLines[li]
        var changed = false
        var worst = CellState.untouched
        var atRisk = false
        for b in 0..<Int(lineSize) {
            let old = state[li][b]
            guard old != .untouched else { continue }
            let new: CellState = inPmem[li][b] ? CellState(replayer.state(of: line + UInt64(b))) : .outside
            if new != old {
                changed = true
                state[li][b] = new
                // What moved the byte, unless it is the store that wrote it.
                if store[li][b] != e.seq { via[li][b] = e.seq }
            }
            worst = max(worst, new)
            if new.isAtRisk { atRisk = true }
        }
        lineWorst[li] = worst
        var mix = Array(repeating: 0, count: CellState.allCases.count)
        for b in 0..<Int(lineSize) where inPmem[li][b] || state[li][b] != .untouched { mix[state[li][b].rawValue] += 1 }
        lineMix[li] = mix
        if atRisk { risky.insert(li) } else { risky.remove(li) }
        return changed
    }

    func runs(_ li: Int) -> [StateRun] {
        let line = chosenLines[li]
        var out: [StateRun] = []
        // Mark the chosen bytes only where the line holds others too.
        let markChosen = (0..<Int(lineSize)).contains { state[li][$0] != .untouched && !chosenByte[li][$0] }
        for b in 0..<Int(lineSize) {
            let s = state[li][b]
            guard s != .untouched else { continue }
            let st = s.isAtRisk ? store[li][b] : nil
            let chosen = markChosen && chosenByte[li][b]
            let address = line + UInt64(b)
            if var last = out.last, last.start + last.length == address, last.state == s, last.chosen == chosen {
                last.length += 1
                if let st {
                    last.store = min(last.store ?? st, st)
                    last.lastStore = max(last.lastStore ?? st, st)
                }
                out[out.count - 1] = last
            } else {
                out.append(StateRun(start: address, length: 1, state: s, store: st, lastStore: st, chosen: chosen))
            }
        }
        return out
    }

    func run() {
        let promiseEvent = ex.promise?.event
        var gapFirst: UInt64?
        var gapLast: UInt64 = 0
        var gapCount = 0
        var steps: [ExplainItem] = []
        let report = TextReport()
        func closeGap() {
            if let f = gapFirst {
                steps.append(.gap(first: f, last: gapLast, count: gapCount, elided: false, rows: rowStates(), mix: rowMix()))
                gapFirst = nil
                gapCount = 0
            }
        }
        let chosenFirst = chosenLines.first ?? 0
        let chosenLast = (chosenLines.last ?? 0) &+ (lineSize - 1)
        func meetsLines(_ a: UInt64, _ n: UInt64) -> Bool {
            guard n > 0 else { return false }
            let last = a &+ (n - 1)
            guard last >= chosenFirst && a <= chosenLast else { return false }
            return !lines(from: a, to: last).isEmpty
        }

        for e in trace.events {
            if e.kind == .stackDefinition {
                continue
            }
            let seq = e.seq
            var relevant = seq == promiseEvent
            var touchedLines: [Int] = []
            var notes: [String] = []
            switch e.kind {
            case .store, .ntstore:
                if e.size > 0 && meetsLines(e.address, e.size) {
                    relevant = true
                    touchedLines = lines(from: e.address, to: e.address &+ (e.size - 1))
                }
            case .clwb, .clflushopt, .clflush:
                if let li = lineIndex[e.address & ~(lineSize - 1)] {
                    relevant = true
                    touchedLines = [li]
                }
            case .sfence, .mfence, .fence, .wpqflush:
                if !risky.isEmpty { relevant = true }
            case .opBegin:
                opRanges[e.op] = (e.address, e.size)
                if meetsLines(e.address, e.size) || e.op == ex.op?.id { relevant = true }
            case .opEnd:
                if let (d, n) = opRanges[e.op], meetsLines(d, n) || e.op == ex.op?.id { relevant = true }
            case .durable:
                if meetsLines(e.address, e.size) { relevant = true }
            case .stackDefinition, .mark, .pmem, .pmemRelease:
                break
            }
            let riskyBefore = risky
            replayer.apply(e)
            guard relevant else {
                if gapFirst == nil { gapFirst = seq }
                gapLast = seq
                gapCount += 1
                continue
            }
            closeGap()

            // Bring the touched lines (and, for fences, every line at risk) up to date.
            var shown: [Int] = []
            switch e.kind {
            case .store, .ntstore:
                let last = e.address &+ (e.size - 1)
                for li in touchedLines {
                    let line = chosenLines[li]
                    let lo = max(e.address, line), hi = min(last, line + lineSize - 1)
                    for a in lo...hi {
                        let b = Int(a - line)
                        store[li][b] = seq
                        nonTemporal[li][b] = e.kind == .ntstore
                        via[li][b] = nil
                        // Written now: a placeholder that the re-read below replaces.
                        state[li][b] = .untouched == state[li][b] ? .durable : state[li][b]
                    }
                    refresh(li, by: e)
                    shown.append(li)
                }
            case .clwb, .clflushopt, .clflush:
                for li in touchedLines {
                    refresh(li, by: e)
                    shown.append(li)
                }
            case .sfence, .mfence, .fence, .wpqflush:
                for li in riskyBefore.sorted() where refresh(li, by: e) { shown.append(li) }
                if shown.isEmpty && !riskyBefore.isEmpty && e.kind != .wpqflush {
                    let dirtyOnly = riskyBefore.allSatisfy { li in state[li].allSatisfy { $0 == .dirty || !$0.isAtRisk } }
                    notes.append(dirtyOnly ? "changes nothing here: dirty bytes need a write-back first"
                                           : "changes nothing here")
                }
            default:
                break
            }
            if seq == promiseEvent {
                // The state where durability was promised: every chosen line.
                for li in chosenLines.indices where state[li].contains(where: { $0 != .untouched }) && !shown.contains(li) {
                    shown.append(li)
                }
                shown.sort()
                let judged = ex.finding.map { $0.rule == .notDurable || $0.rule == .dirtyAtReturn } ?? true
                notes.append((judged ? "promised here: " : "judged here: ") + ex.promise!.what)
            }
            // Markers: what the op's return means.
            if e.kind == .opEnd, let o = opNames[e.op], seq != promiseEvent {
                switch o.contract {
                case .flushcache: notes.append("\(report.opLabel(o)) returns; its caller's next fence is the drain point")
                case .persist: notes.append("\(report.opLabel(o)) returns; its range must be durable now")
                case .none: notes.append("\(report.opLabel(o)) returns")
                }
            }
            if e.kind == .opBegin, let o = opNames[e.op], !e.hasExplicitContract {
                notes.append("contract \(o.contract)")
            }
            let verdicts = result.findings.filter { f in
                guard f.event == seq && f.severity != .note else { return false }
                if let o = f.op, o.id == ex.op?.id { return true }
                return f.ranges.contains { meetsLines($0.start, $0.length) }
            }.map { "\($0.severity): \($0.rule.rawValue): \(report.headline($0))" }

            let visible = Array(shown.prefix(explainer.linesPerStep))
            var touched = Array(repeating: false, count: rows.count)
            if !touchedLines.isEmpty {
                for r in rows.indices {
                    let row = rows[r]
                    if e.kind.isStore {
                        let last = e.address &+ (e.size - 1)
                        touched[r] = e.address <= row.last && last >= row.first
                    } else {
                        touched[r] = touchedLines.contains { rowLines[r].contains($0) } && !row.isByteRun
                            || (row.isByteRun && row.first & ~(lineSize - 1) == e.address & ~(lineSize - 1))
                    }
                }
            }
            var record = e
            record.stack = 0
            let step = ExplainStep(event: e,
                                   record: TextFormat.line(for: record, data: nil, names: trace.names, stacks: trace.stacks),
                                   notes: notes, verdicts: verdicts,
                                   lines: visible.map { (chosenLines[$0], runs($0)) },
                                   moreLines: shown.count - visible.count,
                                   rows: rowStates(), mix: rowMix(), touched: touched, isPromise: seq == promiseEvent)
            steps.append(.step(step))
            if seq == promiseEvent {
                atRiskAtPromise = risks()
                eventsAfterPromise = result.events - seq - 1
                break
            }
        }
        closeGap()
        if promiseEvent == nil { atRiskAtPromise = risks() }
        items = elide(steps)
        if ex.promise != nil || ex.finding == nil { markLost(atRiskAtPromise) }
    }

    /// Chosen bytes at risk now, as runs with what left them there.
    func risks() -> [RiskSpan] {
        var out: [RiskSpan] = []
        for li in chosenLines.indices {
            let line = chosenLines[li]
            for b in 0..<Int(lineSize) where chosenByte[li][b] && state[li][b].isAtRisk {
                let s = state[li][b]
                let bs: ByteState
                switch s {
                case .dirty: bs = .dirty
                case .flushing: bs = .flushing
                case .wc: bs = .wc
                case .queued: bs = .queued
                default: continue
                }
                let address = line + UInt64(b)
                let v = s == .flushing || s == .queued ? via[li][b] : nil
                if var last = out.last, last.start + last.length == address, last.state == bs, last.store == store[li][b], last.via == v {
                    last.length += 1
                    out[out.count - 1] = last
                } else {
                    let missing: Missing = switch bs {
                    case .dirty: .writeBackAndFence
                    case .flushing: .fence
                    case .wc: .fenceAfterNT
                    default: .flushHintAndFence
                    }
                    let st = store[li][b]
                    let stack = st.flatMap { Int($0) < numbered.count ? numbered[Int($0)].stack : nil } ?? 0
                    out.append(RiskSpan(start: address, length: 1, position: ex.op.map { $0.position(of: address) },
                                        state: bs, store: st, nonTemporal: nonTemporal[li][b], stack: stack, via: v,
                                        missing: missing))
                }
            }
        }
        return out
    }

    /// Keeps the first and last halves of the relevant events when there are too many.
    func elide(_ all: [ExplainItem]) -> [ExplainItem] {
        let limit = explainer.limit
        let stepIndices = all.indices.filter { if case .step = all[$0] { true } else { false } }
        guard limit > 0, stepIndices.count > limit else { return all }
        let head = limit / 2, tail = limit - head
        let cutFrom = stepIndices[head], cutTo = stepIndices[stepIndices.count - tail]   // [cutFrom, cutTo)
        var first: UInt64 = .max, last: UInt64 = 0, count = 0
        var rows: [CellState] = []
        var mix: [[Int]] = []
        for item in all[cutFrom..<cutTo] {
            switch item {
            case .step(let s):
                first = min(first, s.event.seq); last = max(last, s.event.seq); count += 1; rows = s.rows; mix = s.mix
            case .gap(let f, let l, let n, _, let r, let m):
                first = min(first, f); last = max(last, l); count += n; rows = r; mix = m
            }
        }
        return Array(all[..<cutFrom]) + [.gap(first: first, last: last, count: count, elided: true, rows: rows, mix: mix)]
            + Array(all[cutTo...])
    }
}
