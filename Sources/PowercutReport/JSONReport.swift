import PowercutModel
import PowercutSymbolize
import PowercutOutput
import PowercutTrace
import PowercutTriage

/// `--format json`: one document for the whole run, keys in a fixed order.
///
///     {"traces":[{"file":S,"form":S,"events":N,"domain":S,"lineSize":N,"ops":N,
///                 "checkedAnything":B,"storesOutsidePmem":N,"omittedFindings":N,
///                 "findings":[{"rule":S,"severity":S,"op":N|null,"opName":S|null,
///                              "cut":N,"event":N|null,"bytes":N,"line":S|null,
///                              "ranges":[{"start":"0x…","length":N,"position":S|null,
///                                         "state":S,"event":N|null,"nonTemporal":B,
///                                         "via":N|null,"missing":S,"fix":S,
///                                         "stack":["0x…",…]}],
///                              "omittedRanges":N,"stack":["0x…",…]}],
///                 "notices":[{"id":S,"severity":S,"message":S}],
///                 "cuts":[{"cut":N,"dirty":N,"flushing":N,"wc":N,"queued":N}]}],
///      "summary":{"traces":N,"events":N,"errors":N,"warnings":N,"notes":N,
///                 "nothingChecked":N,"omittedFindings":N}}
///
/// `notices` say what holds for a whole trace (`nothing-checked`, `stores-outside-pmem`,
/// `findings-omitted`); they are not counted as findings. `omittedFindings` counts the
/// findings past `--max-findings` (included in the error/warning/note counts).
public struct JSONReport {
    public init() {}

    public func render(_ traces: [CheckedTrace]) -> String {
        var w = JSONWriter(pretty: true)
        w.beginObject()
        w.beginArray("traces")
        for t in traces { write(t, into: &w, cuts: { _ in }) }
        w.endArray()
        summary(traces, into: &w)
        return w.output + "\n"
    }

    /// The same document, printed to `out`, with each trace's per-cut series (`--cuts`)
    /// copied in from its spool: the series is never in memory.
    public func render(_ traces: [CheckedTrace], cuts: [CutsSpool?], to out: ReportOutput) throws {
        var stream = Stream(to: out)
        for (t, spool) in zip(traces, cuts) { try stream.add(t, cuts: spool) }
        try stream.finish()
    }

    /// The document printed trace by trace as they come: only the trace being printed is
    /// in memory (its per-cut series not even that), and the summary counts.
    public struct Stream {
        private var w = JSONWriter(pretty: true)
        private let out: ReportOutput
        private var summary = Summary()
        private var nothingChecked = 0
        private var omitted = 0

        public init(to out: ReportOutput) {
            self.out = out
            w.beginObject()
            w.beginArray("traces")
        }

        public mutating func add(_ t: CheckedTrace, cuts spool: CutsSpool?) throws {
            let out = self.out
            try JSONReport().write(t, into: &w) { w in
                guard let spool, spool.spool.count > 0 else { return }
                w.beginArray("cuts")
                // The writer puts the first element's separator; the spool has the rest.
                w.raw(nil, "")
                try out.write(w.takeOutput())
                try out.write(spool.spool)
                w.endArray()
            }
            try out.write(w.takeOutput())
            summary.add(t.result)
            if !t.result.checkedAnything { nothingChecked += 1 }
            omitted += t.result.omittedFindingCount
        }

        public mutating func finish() throws {
            w.endArray()
            JSONReport.summary(summary, nothingChecked: nothingChecked, omitted: omitted, into: &w)
            try out.write(w.takeOutput() + "\n")
        }
    }

    private func summary(_ traces: [CheckedTrace], into w: inout JSONWriter) {
        Self.summary(Summary(traces), nothingChecked: traces.count { !$0.result.checkedAnything },
                     omitted: traces.reduce(0) { $0 + $1.result.omittedFindingCount }, into: &w)
    }

    private static func summary(_ s: Summary, nothingChecked: Int, omitted: Int, into w: inout JSONWriter) {
        w.beginObject("summary")
        w.number("traces", s.traces)
        w.number("events", s.events)
        w.number("errors", s.errors)
        w.number("warnings", s.warnings)
        w.number("notes", s.notes)
        w.number("nothingChecked", nothingChecked)
        w.number("omittedFindings", omitted)
        w.endObject()
        w.endObject()
    }

    /// One trace's object; `cuts` writes a streamed series where a kept one would go.
    func write(_ t: CheckedTrace, into w: inout JSONWriter, cuts: (inout JSONWriter) throws -> Void) rethrows {
        let r = t.result
        w.beginObject()
        w.string("file", t.file)
        w.string("form", t.form.rawValue)
        w.number("events", r.events)
        w.string("domain", r.domain.description)
        w.number("lineSize", r.lineSize)
        w.number("ops", r.opCount)
        w.bool("checkedAnything", r.checkedAnything)
        w.number("storesOutsidePmem", r.storesOutsidePmem)
        w.number("omittedFindings", r.omittedFindingCount)
        w.beginArray("findings")
        for f in r.findings { write(f, t, into: &w) }
        w.endArray()
        w.beginArray("notices")
        for n in r.notices {
            w.beginObject()
            w.string("id", n.id)
            w.string("severity", n.severity.rawValue)
            w.string("message", n.message)
            w.endObject()
        }
        w.endArray()
        if let cuts = r.cuts {
            w.beginArray("cuts")
            for (i, c) in cuts.enumerated() {
                w.raw(nil, "{\"cut\":\(i),\"dirty\":\(c.dirty),\"flushing\":\(c.flushing),\"wc\":\(c.wc),\"queued\":\(c.queued)}")
            }
            w.endArray()
        } else {
            try cuts(&w)
        }
        w.endObject()
    }

    func write(_ f: Finding, _ t: CheckedTrace, into w: inout JSONWriter) {
        w.beginObject()
        w.string("rule", f.rule.rawValue)
        w.string("severity", f.severity.rawValue)
        w.number("op", f.op?.id)
        w.string("opName", f.op?.name)
        w.string("contract", f.op?.contract.description)
        w.number("cut", f.cut)
        w.number("event", f.event)
        w.number("bytes", f.bytes)
        w.string("line", f.line.map { "0x" + hex($0) })
        w.string("message", f.headline)
        w.beginArray("ranges")
        for r in f.ranges { Self.write(r, stack: t.frames(r.stack), into: &w) }
        w.endArray()
        w.number("omittedRanges", f.omittedRanges)
        Self.stack(t.frames(f.stack), into: &w)
        w.endObject()
    }

    /// One byte range as a JSON object (shared with SARIF's result properties, which
    /// carry the stack elsewhere and pass nil).
    static func write(_ r: ByteRange, stack frames: [UInt64]?, into w: inout JSONWriter) {
        w.beginObject()
        w.string("start", "0x" + hex(r.start))
        w.number("length", r.length)
        w.string("position", r.position?.rawValue)
        w.string("state", r.state.rawValue)
        w.number("event", r.event)
        w.bool("nonTemporal", r.nonTemporal)
        w.number("via", r.via)
        w.string("missing", r.missing.rawValue)
        w.string("fix", r.missingText)
        if let frames { stack(frames, into: &w) }
        w.endObject()
    }

    private static func stack(_ frames: [UInt64], into w: inout JSONWriter) {
        w.raw("stack", "[" + frames.map { "\"0x\(hex($0))\"" }.joined(separator: ",") + "]")
    }
}

/// `--format brief`: one line per finding range, stable and diffable. The regression
/// corpus keeps its expected verdicts in this form.
///
///     error not-durable op=1 cut=8 at=#7 0x10048+2 tail dirty store=#4
///
/// The trace's notices close it: `warning nothing-checked`, `note stores-outside-pmem
/// stores=N`, `note findings-omitted findings=N`.
public struct BriefReport {
    public init() {}

    public func render(_ t: CheckedTrace) -> String {
        var out = ""
        for f in t.result.findings {
            let head = "\(f.severity) \(f.rule.rawValue) op=\(f.op.map { String($0.id) } ?? "-") cut=\(f.cut) at=\(f.event.map { "#\($0)" } ?? "end")"
            if f.ranges.isEmpty {
                out += head + (f.line.map { " line=0x\(hex($0))" } ?? "") + "\n"
                continue
            }
            for r in f.ranges {
                var s = "\(head) 0x\(hex(r.start))+\(r.length) \(r.position?.rawValue ?? "-") \(r.state.rawValue)"
                if let e = r.event { s += " \(r.nonTemporal ? "ntstore" : "store")=#\(e)" }
                if let v = r.via { s += " via=#\(v)" }
                out += s + "\n"
            }
            if f.omittedRanges > 0 { out += "\(head) +\(f.omittedRanges) more ranges\n" }
        }
        let r = t.result
        if !r.checkedAnything { out += "warning nothing-checked\n" }
        if r.storesOutsidePmem > 0 { out += "note stores-outside-pmem stores=\(r.storesOutsidePmem)\n" }
        if r.omittedFindingCount > 0 { out += "note findings-omitted findings=\(r.omittedFindingCount)\n" }
        return out
    }
}

/// `--cuts` in text: how durability builds up, one line per cut point.
public struct CutsReport {
    public init() {}

    static let header = "cut      dirty  flushing        wc    queued   at risk\n"

    /// The table, its rows copied from the series a `CutsSpool` streamed during the
    /// replay (or from the kept series when there is no spool).
    public func render(_ t: CheckedTrace, series: CutsSpool?, to out: ReportOutput) throws {
        guard let series else { return try out.write(render(t)) }
        try out.write(Self.header)
        try out.write(series.spool)
    }

    public func render(_ t: CheckedTrace) -> String {
        guard let cuts = t.result.cuts else { return "" }
        var out = Self.header
        func col(_ v: UInt64) -> String {
            let s = String(v)
            return String(repeating: " ", count: max(0, 10 - s.count)) + s
        }
        for (i, c) in cuts.enumerated() {
            let k = String(i)
            out += k + String(repeating: " ", count: max(1, 5 - k.count))
            out += col(c.dirty) + col(c.flushing) + col(c.wc) + col(c.queued) + col(c.atRisk) + "\n"
        }
        return out
    }
}
