import PowercutOutput

/// Printers over a crash run's values; they only format.

public struct CrashTextReport {
    /// The frames of a call stack by ID, as lines (the CLI symbolizes them).
    public var stackText: (UInt32) -> String
    /// How a user reruns the checker on a saved image (nil: not a command).
    public var rerun: String?

    public init(stackText: @escaping (UInt32) -> String = { _ in "" }, rerun: String? = nil) {
        self.stackText = stackText
        self.rerun = rerun
    }

    public func render(_ o: CrashOutcome) -> String {
        var s = ""
        for r in o.ranges {
            s += "powercut: range \(r.name.map { "\($0) " } ?? "")\(hex(r.base)) (\(r.length) bytes)\(r.declaredAt.map { ", tracked from event #\($0)" } ?? ""): content before the trace from \(r.source)\n"
        }
        for c in o.cuts where !c.everyImage {
            s += "powercut: \(c.label): \(c.count.images); checked \(c.planned - c.repeated): \(c.enumerationWording)\n"
        }
        for r in o.reported { s += render(r) }
        return s
    }

    public func render(_ r: ReportedImage) -> String {
        var s = "\n" + r.headline + "\n"
        if r.lines.isEmpty { s += "  every write persisted (the newest image of the cut)\n" }
        for line in r.lines {
            s += "  line \(hex(line.address)):\n"
            for w in line.persisted { s += "    persisted \(w.wording)\n" + frames(w.stack) }
            for w in line.lost { s += "    lost      \(w.wording)\n" + frames(w.stack) }
        }
        let output = r.output.split(separator: "\n", omittingEmptySubsequences: false)
        if !r.output.isEmpty {
            s += "  checker output:\n"
            for l in output.prefix(keptOutputLines + 1) where !(l.isEmpty && l == output.last) { s += "    | \(l)\n" }
        }
        if let p = r.savedPath {
            s += "  image saved: \(p)\n"
            if let rerun { s += "  rerun: \(rerun) \(p)\n" }
        }
        return s
    }

    func frames(_ stack: UInt32) -> String { stack == 0 ? "" : stackText(stack) }
}

/// `--count`: per checked cut, its exact number of distinct images.
public struct CountReport {
    public init() {}

    public func text(_ cuts: [CutSummary]) -> String {
        var s = ""
        for c in cuts { s += "\(c.label): \(c.count.images)\n" }
        let total = cuts.reduce(ImageCount.exact(0)) { $0 + $1.count }
        s += "powercut: \(cuts.count) checked cut\(cuts.count == 1 ? "" : "s"), \(total.images) in all\n"
        return s
    }

    public func json(_ cuts: [CutSummary]) -> String {
        "[" + cuts.map { "\n  {\"cut\": \($0.cut), \"images\": \(jsonCount($0.count))}" }.joined(separator: ",") + (cuts.isEmpty ? "]\n" : "\n]\n")
    }
}

func jsonCount(_ c: ImageCount) -> String {
    switch c {
    case .exact(let n): String(n)
    case .rounded: "\"\(c)\", \"rounded\": true"
    }
}

func jsonString(_ s: String) -> String { JSONWriter.quote(s) }

public struct CrashJSONReport {
    public init() {}

    public func render(_ o: CrashOutcome) -> String {
        var s = "{\n  \"trace\": \(jsonString(o.trace)),\n  \"ranges\": ["
        s += o.ranges.map { r in
            "\n    {\"base\": \(jsonString(hex(r.base))), \"length\": \(r.length)\(r.name.map { ", \"name\": \(jsonString($0))" } ?? ""), \"initial\": \(jsonString(r.source))\(r.declaredAt.map { ", \"declared_at\": \($0)" } ?? "")}"
        }.joined(separator: ",") + "\n  ],\n  \"cuts\": ["
        s += o.cuts.map { c in
            var e = "\n    {\"cut\": \(c.cut), \"images\": \(jsonCount(c.count)), \"checked\": \(c.planned - c.repeated), \"repeated\": \(c.repeated), \"every_image\": \(c.everyImage)"
            if let b = c.before { e += ", \"event_before\": \(b.seq)" }
            switch c.enumeration {
            case .every: e += ", \"enumeration\": \"every\""
            case .depth(let d): e += ", \"enumeration\": \"depth\", \"depth\": \(d), \"truncated\": \(c.truncated)"
            case .random(let n, let seed): e += ", \"enumeration\": \"random\", \"samples\": \(n), \"seed\": \(seed)"
            }
            return e + "}"
        }.joined(separator: ",") + "\n  ],\n  \"inconsistent\": ["
        s += o.reported.map(render).joined(separator: ",") + "\n  ],\n"
        s += "  \"summary\": {\"inconsistent\": \(o.failures), \"crashed\": \(o.crashed), \"timed_out\": \(o.timedOut), \"skipped\": \(o.skipped), \"checked\": \(o.checked), \"repeated\": \(o.repeated), \"images\": \(jsonCount(o.total)), \"every_image\": \(o.everyImage), \"text\": \(jsonString(o.summary))}\n}\n"
        return s
    }

    func render(_ r: ReportedImage) -> String {
        func writes(_ ws: [WriteRef]) -> String {
            "[" + ws.map { "{\"event\": \($0.seq), \"kind\": \"\($0.nonTemporal ? "ntstore" : "store")\", \"address\": \(jsonString(hex($0.address))), \"length\": \($0.length), \"thread\": \($0.thread), \"stack\": \($0.stack)}" }.joined(separator: ", ") + "]"
        }
        var s = "\n    {\"cut\": \(r.cut.cut), \"image\": \(r.index), \"verdict\": \"\(r.verdict.keyword)\""
        if let b = r.cut.before { s += ", \"event_before\": \(b.seq)" }
        switch r.verdict {
        case .inconsistent(let v): s += ", \"status\": \(v)"
        case .crashed(let v): s += ", \"signal\": \(v)"
        case .timedOut(let t): s += ", \"seconds\": \(t)"
        default: break
        }
        s += ", \"message\": \(jsonString(r.headline)), \"output\": \(jsonString(r.output))"
        s += ", \"lines\": [" + r.lines.map { "{\"address\": \(jsonString(hex($0.address))), \"persisted\": \(writes($0.persisted)), \"lost\": \(writes($0.lost))}" }.joined(separator: ", ") + "]"
        if let p = r.savedPath { s += ", \"saved\": \(jsonString(p))" }
        return s + "}"
    }
}

public struct CrashSARIFReport {
    public var toolVersion: String
    public init(toolVersion: String) { self.toolVersion = toolVersion }

    public func render(_ o: CrashOutcome) -> String {
        let results = o.reported.map { r -> String in
            var text = r.headline
            for line in r.lines {
                text += "; line \(hex(line.address)): persisted \(line.persisted.map { "#\($0.seq)" }.joined(separator: " ")), lost \(line.lost.map { "#\($0.seq)" }.joined(separator: " "))"
            }
            return """
                {"ruleId": "inconsistent-image", "level": "error", "message": {"text": \(jsonString(text))}, \
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": \(jsonString(o.trace))}}}], \
                "properties": {"cut": \(r.cut.cut), "image": \(r.index), "verdict": "\(r.verdict.keyword)"\(r.savedPath.map { ", \"saved\": \(jsonString($0))" } ?? "")}}
                """
        }
        return """
            {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [{"tool": {"driver": {"name": "powercut", \
            "version": \(jsonString(toolVersion)), "rules": [{"id": "inconsistent-image", "shortDescription": {"text": "A crash image the recovery checker finds inconsistent"}}]}}, \
            "results": [\(results.joined(separator: ", "))], "properties": {"summary": \(jsonString(o.summary))}}]}

            """
    }
}

public struct CrashJUnitReport {
    public init() {}

    func xml(_ s: String) -> String { xmlEscape(s) }

    public func render(_ o: CrashOutcome, text: CrashTextReport) -> String {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let failing = Set(o.reported.map { $0.cut.cut })
        let failedCuts = o.cuts.filter { failing.contains($0.cut) }.count
        s += "<testsuites tests=\"\(o.cuts.count)\" failures=\"\(failedCuts)\">\n"
        s += "  <testsuite name=\"\(xml("powercut crash " + o.trace))\" tests=\"\(o.cuts.count)\" failures=\"\(failedCuts)\">\n"
        for c in o.cuts {
            s += "    <testcase classname=\"powercut.crash\" name=\"\(xml(c.label))\""
            let mine = o.reported.filter { $0.cut.cut == c.cut }
            if mine.isEmpty { s += "/>\n"; continue }
            s += ">\n"
            for r in mine { s += "      <failure message=\"\(xml(r.headline))\">\(xml(text.render(r)))</failure>\n" }
            s += "    </testcase>\n"
        }
        s += "    <system-out>\(xml(o.summary))</system-out>\n  </testsuite>\n</testsuites>\n"
        return s
    }
}

