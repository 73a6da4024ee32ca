import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// What a run makes of each finding once suppressions and a baseline are applied:
/// suppressed first (a matching suppression wins), then known (its fingerprint is in
/// the baseline), else reported. Only reported error findings fail a run.
public struct Triage {
    public enum Status: Sendable, Equatable {
        /// Shown, and an error one fails the run.
        case reported
        /// In the baseline: not shown (SARIF lists it as `unchanged`), does not fail the run.
        case known
        /// Left out by a suppression (SARIF lists it with that suppression).
        case suppressed(Suppression)
    }

    public struct Entry {
        public var fingerprint: Fingerprint
        public var status: Status
        /// Whether the baseline lists it (whether or not a suppression took it first).
        public var inBaseline: Bool
    }

    public var traces: [CheckedTrace]
    /// Per trace, per finding, parallel to `traces[i].result.findings`.
    public var entries: [[Entry]]
    /// Whether a baseline was given (SARIF then says which results are new).
    public var hasBaseline: Bool
    public var frames: FrameResolver
    /// Per trace, the trace line of the events findings point at (`Finding.originEvent`
    /// and `event`), for text traces read from a file; see `locateEvents()`.
    public var eventLines: [[UInt64: Int]]

    public init(_ traces: [CheckedTrace], suppressions: SuppressionList = SuppressionList(), baseline: Baseline? = nil,
                frames: FrameResolver = FrameResolver()) {
        self.traces = traces
        self.frames = frames
        hasBaseline = baseline != nil
        entries = traces.map { t in
            t.result.findings.map { f in
                let print = Fingerprint(f, in: t, frames: frames)
                let known = baseline?.contains(print) ?? false
                if let s = suppressions.match(f, in: t, frames: frames) {
                    return Entry(fingerprint: print, status: .suppressed(s), inBaseline: known)
                }
                return Entry(fingerprint: print, status: known ? .known : .reported, inBaseline: known)
            }
        }
        eventLines = traces.map { _ in [:] }
    }

    /// Reads each text trace again, with the trace reader, for the lines of the events
    /// findings point at (binary traces and standard input have none).
    public mutating func locateEvents() {
        eventLines = traces.map { t in
            guard t.form == .text, t.file != "-" else { return [:] }
            return TraceLines.lines(of: Set(t.result.findings.flatMap(\.pointedAtEvents)), inFile: t.file)
        }
    }

    /// The traces with only their reported findings: what the text, brief, JSON, JUnit
    /// and GitHub printers show.
    public var reportedTraces: [CheckedTrace] {
        zip(traces, entries).map { t, es in
            var t = t
            t.result.findings = zip(t.result.findings, es).compactMap { f, e in e.status == .reported ? f : nil }
            return t
        }
    }

    private var statuses: [Status] { entries.flatMap { $0.map(\.status) } }

    public var knownCount: Int { statuses.count { $0 == .known } }
    public var suppressedCount: Int { statuses.count { if case .suppressed = $0 { true } else { false } } }

    /// Reported error findings: the run fails when there is one.
    public var reportedErrors: Int {
        var n = 0
        for (t, es) in zip(traces, entries) {
            for (f, e) in zip(t.result.findings, es) where e.status == .reported && f.severity == .error { n += 1 }
        }
        return n
    }

    /// Each suppression that took a finding, with how many, in the order of the files.
    public var usedSuppressions: [(suppression: Suppression, count: Int)] {
        var used: [(suppression: Suppression, count: Int)] = []
        for case .suppressed(let s) in statuses {
            if let i = used.firstIndex(where: { $0.suppression == s }) { used[i].count += 1 } else { used.append((s, 1)) }
        }
        return used.sorted { ($0.suppression.file, $0.suppression.line) < ($1.suppression.file, $1.suppression.line) }
    }

    /// What `--write-baseline` records: every finding not suppressed.
    public var baselineText: String {
        var rows: [(fingerprint: Fingerprint, trace: String)] = []
        for (t, es) in zip(traces, entries) {
            for e in es {
                if case .suppressed = e.status { continue }
                rows.append((e.fingerprint, t.file))
            }
        }
        return Baseline.render(rows)
    }

    /// The reported findings with their traces, in order (for `--gen-suppressions`).
    public var reportedFindings: [(Finding, CheckedTrace)] {
        reportedTraces.flatMap { t in t.result.findings.map { ($0, t) } }
    }

    /// "(2 known from the baseline, 1 suppressed)", or "" when neither was asked for.
    public func countsNote(baseline: Bool, suppressions: Bool) -> String {
        var parts: [String] = []
        if baseline { parts.append("\(knownCount) known from the baseline") }
        if suppressions { parts.append("\(suppressedCount) suppressed") }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
    }
}
