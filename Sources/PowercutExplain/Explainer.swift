import PowercutModel
import PowercutSymbolize
import PowercutTrace

// `powercut explain`: the story of chosen bytes across the cut points.
//
// The first replay is the check's: it finds the findings (numbered as `powercut check`
// lists them) and the ops, which decide the bytes to follow. The story is then told by
// a `ReplayObserver` plugged into a second replay: after every event that concerns the
// chosen bytes' cache lines it asks the replayer for the state of those lines (explain
// keeps no model state of its own). The events that concern them ("relevant"): stores
// and non-temporal stores that touch the lines, write-backs of the lines, fences and
// flush-hint writes while some byte of the lines is at risk, the markers of the ops whose
// destination meets the lines, `durable` assertions over them, and the event where
// durability was promised. Every other event leaves those bytes as they were, so runs of
// them are only counted.
//
// Memory follows what is at risk, not what a trace declares: of a destination or
// assertion larger than `Explainer.maxFollowedLines` lines, only the lines some store
// touched are followed.

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
    public var atRisk: [ByteRange]
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
            ex.title = o.label + ": dst=0x\(hex(o.dst)) len=\(o.length) contract=\(o.contract)"
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
            ex.title = "\(f.title)"
        }
        ex.finding = finding
        ex.severity = finding?.severity
        ex.op = op
        ex.chosen = merge(spans)
        guard !ex.chosen.isEmpty else { return ex }

        // 2. Where durability was promised.
        ex.promise = promise(finding: finding, op: op, events: numbered, total: result.events, domain: result.domain)

        // 3. The lines to follow and the picture's rows.
        ex.lines = followedLines(ex.chosen, finding: finding, trace: trace, lineSize: lineSize)

        // 4. Walk the events, as an observer of a second replay.
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
        let walk = Walk(explainer: self, trace: trace, result: result, ex: ex, pmem: pmem, runRows: runRows)
        let replayer = Replayer(header: header, options: options, observer: walk)
        replayer.apply(trace.batch)
        _ = replayer.finish(names: trace.names)
        ex.items = walk.items
        ex.rows = walk.rows
        ex.atRisk = walk.atRiskAtPromise
        ex.eventsAfterPromise = walk.eventsAfterPromise
        if let f = finding, f.rule == .notDurable || f.rule == .dirtyAtReturn || f.rule == .outOfBoundsStore {
            // The model's own account, cut to the chosen bytes.
            ex.atRisk = f.ranges.compactMap { r in
                guard let (s, n) = intersect(r.start, r.length, ex.chosen) else { return nil }
                var cut = r
                cut.start = s
                cut.length = n
                return cut
            }
            walk.markLost(ex.atRisk)
            ex.rows = walk.rows
        }
        ex.fixes = Finding.fixes(for: finding, atRisk: ex.atRisk,
                                 context: FixContext(domain: ex.domain, lineSize: lineSize, op: ex.op,
                                                     place: ex.promise?.place ?? "the end of the trace",
                                                     promiseEvent: ex.promise?.event))
        return ex
    }

    /// The most lines of a destination or assertion followed whole; of a larger one only
    /// the lines some store touched, so that memory follows
    /// what the trace stores, not a length it declares.
    public static let maxFollowedLines: UInt64 = 4096

    /// The cache lines of the chosen bytes to follow, sorted.
    func followedLines(_ chosen: [(start: UInt64, length: UInt64)], finding: Finding?, trace: Trace,
                       lineSize: UInt64) -> [UInt64] {
        func linesOf(_ s: UInt64, _ n: UInt64) -> (first: UInt64, last: UInt64) {
            (s & ~(lineSize - 1), (s &+ (n - 1)) & ~(lineSize - 1))
        }
        var total: UInt64 = 0
        for (s, n) in chosen {
            let (first, last) = linesOf(s, n)
            total = total &+ (last - first) / lineSize + 1
            if total > Self.maxFollowedLines { break }
        }
        var lineSet = Set<UInt64>()
        func add(_ first: UInt64, _ last: UInt64) {
            var line = first
            while true {
                lineSet.insert(line)
                if line >= last { break }
                line += lineSize
            }
        }
        if total <= Self.maxFollowedLines {
            for (s, n) in chosen { let (f, l) = linesOf(s, n); add(f, l) }
            return lineSet.sorted()
        }
        // Only lines some store touched, inside the chosen bytes.
        for e in trace.events where e.kind.isStore && e.size > 0 {
            let eLast = e.address &+ (e.size - 1)
            for (s, n) in chosen {
                let lo = max(e.address, s), hi = min(eLast, s &+ (n - 1))
                if lo <= hi { let (f, l) = linesOf(lo, hi - lo + 1); add(f, l) }
            }
        }
        // Every at-risk byte was stored to, so the finding's own bytes are among these.
        return lineSet.sorted()
    }

    /// Sorted, merged spans.
    func merge(_ spans: [(UInt64, UInt64)]) -> [(start: UInt64, length: UInt64)] {
        var out: [(start: UInt64, length: UInt64)] = []
        // Inclusive ends: a span may end at the last byte of the address space.
        for (s, n) in spans.sorted(by: { $0.0 < $1.0 }) where n > 0 {
            if let last = out.last, s == 0 || last.start &+ (last.length - 1) >= s - 1 {
                let end = max(last.start &+ (last.length - 1), s &+ (n - 1))
                out[out.count - 1].length = end - last.start + 1
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
            guard n > 0, c.length > 0 else { continue }
            let lo = max(s, c.start), hi = min(s &+ (n - 1), c.start &+ (c.length - 1))
            if lo <= hi { return (lo, hi - lo + 1) }
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
        let label = op.map { $0.label } ?? ""
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
}

/// The story, told by watching a replay: after each relevant event it reads the states
/// of the chosen lines from the replayer. What it keeps per byte is only what the
/// picture needs and the model does not: whether a byte was ever stored to (untouched is
/// not a persistence state), and the states last shown, to tell which lines changed.
private final class Walk: ReplayObserver {
    let explainer: Explainer
    let trace: Trace
    let result: ReplayResult
    let ex: Explanation
    let lineSize: UInt64
    let chosenLines: [UInt64]
    let lineIndex: [UInt64: Int]
    let promiseEvent: UInt64?
    /// The story ended at the promise; later events are only counted.
    var done = false

    /// Per chosen line, per byte: the state last read (untouched: never stored to) and,
    /// for an at-risk byte, the store that wrote it.
    var state: [[CellState]]
    var store: [[UInt64?]]
    var inPmem: [[Bool]]
    var chosenByte: [[Bool]]
    /// Per chosen line, the count of its bytes in each state.
    var lineMix: [[Int]]
    /// Lines with at-risk bytes now.
    var risky = Set<Int>()
    /// `refresh`'s view of one line, per byte: its state and store in the model now.
    var now: [CellState] = []
    var storeNow: [UInt64?] = []

    var rows: [ExplainRow] = []
    /// Per row: the lines it covers (index range) or the byte run it is.
    var rowLines: [Range<Int>] = []
    var items: [ExplainItem] = []
    var steps: [ExplainItem] = []
    var atRiskAtPromise: [ByteRange] = []
    var eventsAfterPromise: UInt64 = 0

    /// Op ranges by ID, for the op markers.
    var opRanges: [UInt64: (UInt64, UInt64)] = [:]
    var opNames: [UInt64: OpInfo] = [:]
    /// A run of events left out of the story.
    var gapFirst: UInt64?
    var gapLast: UInt64 = 0
    var gapCount = 0
    let chosenFirst: UInt64
    let chosenLast: UInt64

    init(explainer: Explainer, trace: Trace, result: ReplayResult, ex: Explanation, pmem: [PmemRange],
         runRows: [(UInt64, UInt64)]) {
        self.explainer = explainer
        self.trace = trace
        self.result = result
        self.ex = ex
        lineSize = ex.lineSize
        chosenLines = ex.lines
        promiseEvent = ex.promise?.event
        var index: [UInt64: Int] = [:]
        for (i, l) in chosenLines.enumerated() { index[l] = i }
        lineIndex = index
        let n = Int(lineSize)
        state = Array(repeating: Array(repeating: .untouched, count: n), count: chosenLines.count)
        store = Array(repeating: Array(repeating: nil, count: n), count: chosenLines.count)
        inPmem = chosenLines.map { line in (0..<UInt64(n)).map { b in pmem.contains { $0.contains(line + b) } } }
        chosenByte = chosenLines.map { line in
            (0..<UInt64(n)).map { b in ex.chosen.contains { line + b >= $0.start && line + b - $0.start < $0.length } }
        }
        lineMix = inPmem.map { p in
            var mix = Array(repeating: 0, count: CellState.allCases.count)
            mix[CellState.untouched.rawValue] = p.filter { $0 }.count
            return mix
        }
        chosenFirst = chosenLines.first ?? 0
        chosenLast = (chosenLines.last ?? 0) &+ (lineSize - 1)
        for o in result.ops { opNames[o.id] = o }
        buildRows(runRows)
    }

    /// The last byte of a line (never past the end of the address space).
    func lastByte(_ line: UInt64) -> UInt64 { line &+ (lineSize - 1) }

    // MARK: Rows

    func buildRows(_ runRows: [(UInt64, UInt64)]) {
        let lines = chosenLines
        let bandSize = lines.count <= explainer.maxRows ? 1 : (lines.count + explainer.maxRows - 1) / explainer.maxRows
        var i = 0
        while i < lines.count {
            let j = min(lines.count, i + bandSize)
            let first = lines[i], last = lastByte(lines[j - 1])
            let label = j - i == 1 ? "line 0x\(hex(first))" : "lines 0x\(hex(first))-0x\(hex(lines[j - 1])) (\(j - i))"
            rows.append(ExplainRow(label: label, first: first, last: last, isByteRun: false, lost: false))
            rowLines.append(i..<j)
            if bandSize == 1 {
                // Runs of chosen bytes that are not the whole line get rows of their own.
                for (start, length) in runRows where rows.count < 2 * explainer.maxRows && length > 0 {
                    let lo = max(start, first), hi = min(start &+ (length - 1), last)
                    guard lo <= hi, !(lo == first && hi == last) else { continue }
                    let pos = ex.op.map { o -> String in
                        let p = o.position(of: lo)
                        return p == .outside ? "" : " \(p.rawValue)"
                    } ?? ""
                    let label = hi == lo ? "0x\(hex(lo))\(pos)" : "0x\(hex(lo))-0x\(hex(hi))\(pos)"
                    rows.append(ExplainRow(label: label, first: lo, last: hi, isByteRun: true, lost: false))
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

    func markLost(_ spans: [ByteRange]) {
        for r in rows.indices {
            let row = rows[r]
            // A line row is marked only when no run of its own shows the lost bytes.
            let hasRunRows = !row.isByteRun && rows.indices.contains { rows[$0].isByteRun && rowLines[$0] == rowLines[r] }
            rows[r].lost = !hasRunRows && spans.contains { s in
                s.state != .durable && s.start <= row.last && s.start &+ (s.length - 1) >= row.first
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
    func refresh(_ li: Int, from replayer: Replayer) -> Bool {
        let line = chosenLines[li]
        let n = Int(lineSize)
        // The model's at-risk runs of the line; every other stored pmem byte is durable.
        // (In buffers kept from call to call: a megabyte store refreshes 32 K lines.)
        if now.count != n {
            now = [CellState](repeating: .durable, count: n)
            storeNow = [UInt64?](repeating: nil, count: n)
        }
        for b in 0..<n {
            now[b] = .durable
            storeNow[b] = nil
        }
        for r in replayer.atRisk(line, lastByte(line)) {
            for a in r.start...(r.start &+ (r.length - 1)) {
                let b = Int(a - line)
                now[b] = CellState(r.state)
                storeNow[b] = r.event
            }
        }
        var changed = false
        var atRisk = false
        for b in 0..<n {
            let old = state[li][b]
            guard old != .untouched else { continue }
            let new: CellState = inPmem[li][b] ? now[b] : .outside
            if new != old {
                changed = true
                state[li][b] = new
            }
            store[li][b] = new.isAtRisk ? storeNow[b] : nil
            if new.isAtRisk { atRisk = true }
        }
        for k in lineMix[li].indices { lineMix[li][k] = 0 }
        for b in 0..<n where inPmem[li][b] || state[li][b] != .untouched { lineMix[li][state[li][b].rawValue] += 1 }
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
            if var last = out.last, last.start &+ last.length == address, last.state == s, last.chosen == chosen {
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

    func meetsLines(_ a: UInt64, _ n: UInt64) -> Bool {
        guard n > 0, !chosenLines.isEmpty else { return false }
        let last = a &+ (n - 1)
        guard last >= chosenFirst && a <= chosenLast else { return false }
        return !lines(from: a, to: last).isEmpty
    }

    func closeGap() {
        if let f = gapFirst {
            steps.append(.gap(first: f, last: gapLast, count: gapCount, elided: false, rows: rowStates(), mix: rowMix()))
            gapFirst = nil
            gapCount = 0
        }
    }

    // MARK: The replay's events

    func replayer(_ replayer: Replayer, applied e: Event, data: ArraySlice<UInt8>?) {
        guard !done else { return }
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
        guard relevant else {
            if gapFirst == nil { gapFirst = seq }
            gapLast = seq
            gapCount += 1
            return
        }
        closeGap()
        let riskyBefore = risky

        // Bring the touched lines (and, for fences, every line at risk) up to date.
        var shown: [Int] = []
        switch e.kind {
        case .store, .ntstore:
            let last = e.address &+ (e.size - 1)
            for li in touchedLines {
                let line = chosenLines[li]
                let lo = max(e.address, line), hi = min(last, lastByte(line))
                for a in lo...hi {
                    let b = Int(a - line)
                    // Stored to now: the re-read below gives its state.
                    if state[li][b] == .untouched { state[li][b] = .durable }
                }
                refresh(li, from: replayer)
                shown.append(li)
            }
        case .clwb, .clflushopt, .clflush:
            for li in touchedLines {
                refresh(li, from: replayer)
                shown.append(li)
            }
        case .sfence, .mfence, .fence, .wpqflush:
            for li in riskyBefore.sorted() where refresh(li, from: replayer) { shown.append(li) }
            if shown.isEmpty && !riskyBefore.isEmpty && e.kind != .wpqflush {
                let dirtyOnly = riskyBefore.allSatisfy { li in state[li].allSatisfy { $0 == .dirty || !$0.isAtRisk } }
                notes.append(dirtyOnly ? "changes nothing here: dirty bytes need a write-back first"
                                       : "changes nothing here")
            }
        default:
            break
        }
        if seq == promiseEvent {
            // The state where durability was promised: every chosen line. (A set for the
            // lines already shown: a megabyte store is 16 K lines, too many to search.)
            let already = Set(shown)
            for li in chosenLines.indices where !already.contains(li) && state[li].contains(where: { $0 != .untouched }) {
                shown.append(li)
            }
            shown.sort()
            let judged = ex.finding.map { $0.rule == .notDurable || $0.rule == .dirtyAtReturn } ?? true
            notes.append((judged ? "promised here: " : "judged here: ") + ex.promise!.what)
        }
        // Markers: what the op's return means.
        if e.kind == .opEnd, let o = opNames[e.op], seq != promiseEvent {
            switch o.contract {
            case .flushcache: notes.append("\(o.label) returns; its caller's next fence is the drain point")
            case .persist: notes.append("\(o.label) returns; its range must be durable now")
            case .none: notes.append("\(o.label) returns")
            }
        }
        if e.kind == .opBegin, let o = opNames[e.op], !e.hasExplicitContract {
            notes.append("contract \(o.contract)")
        }
        let verdicts = result.findings.filter { f in
            guard f.event == seq && f.severity != .note else { return false }
            if let o = f.op, o.id == ex.op?.id { return true }
            return f.ranges.contains { meetsLines($0.start, $0.length) }
        }.map(\.title)

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
            atRiskAtPromise = risks(replayer)
            eventsAfterPromise = result.events - seq - 1
            done = true
        }
    }

    func replayFinished(_ replayer: Replayer, result: ReplayResult) {
        closeGap()
        if promiseEvent == nil { atRiskAtPromise = risks(replayer) }
        items = elide(steps)
        if ex.promise != nil || ex.finding == nil { markLost(atRiskAtPromise) }
    }

    /// Chosen bytes at risk now, as the model has them, in runs of one state, store and
    /// write-back.
    func risks(_ replayer: Replayer) -> [ByteRange] {
        var out: [ByteRange] = []
        for li in chosenLines.indices {
            let line = chosenLines[li]
            for var r in replayer.atRisk(line, lastByte(line)) {
                // Only the chosen bytes of the run, byte by byte (a line at most).
                for a in r.start...(r.start &+ (r.length - 1)) where chosenByte[li][Int(a - line)] {
                    if var last = out.last, last.start &+ last.length == a, last.state == r.state, last.event == r.event,
                       last.via == r.via {
                        last.length += 1
                        out[out.count - 1] = last
                    } else {
                        r.start = a
                        r.length = 1
                        r.position = ex.op.map { $0.position(of: a) }
                        out.append(r)
                    }
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
