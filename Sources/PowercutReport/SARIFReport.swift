import PowercutModel
import PowercutSymbolize
import PowercutOutput
import PowercutTrace
import PowercutTriage

/// `--format sarif`: one SARIF 2.1.0 log with one run for the whole invocation, for code
/// scanning (GitHub's upload-sarif, GitLab, Azure DevOps, VS Code's SARIF viewer).
///
/// - `tool.driver.rules`: every powercut rule, always all of them in `Rule.allCases`
///   order (so `ruleIndex` is stable), with short and full descriptions, help text and
///   the default level.
/// - One result per finding, including the ones a baseline or suppression leaves out:
///   with a baseline every result has `baselineState` (`new` or `unchanged`); a
///   suppressed result carries an accepted external `suppressions` entry naming the
///   block, so viewers hide it.
/// - `message.text`: the finding's headline as its first sentence, then each byte range
///   (at most 4) and what is missing.
/// - Paths under the source root (`--source-root DIR`, default the current directory)
///   are relative URIs with `uriBaseId` `%SRCROOT%`, which `run.originalUriBaseIds`
///   maps to the root's `file://` URI; paths outside it stay absolute `file://` URIs.
/// - `locations[0]`: the frame of the finding's origin stack in the user's own code
///   (`SourceRoot.ownFrame`: the first frame that is not an inlined helper, with a source
///   file under the root), the inline chain from the innermost frame down to it in the
///   message: its source file and line when a symbolizer knows them; else the module's file with the
///   module-relative `address` (`relativeAddress`, `offsetFromParent`, `parentIndex`
///   into `run.addresses`, where each module is an address of kind `module`); else (no
///   stack, or a frame in no module) the trace file at the event's line.
/// - `relatedLocations`: the trace at the line of the store (or deciding event).
/// - `stacks`: every distinct stack involved, innermost frame first.
/// - `partialFingerprints["powercut/v1"]`: `Fingerprint.hash`, stable across ASLR.
/// - `properties`: trace, op, cut point, deciding event, byte count and every range.
/// - What holds for a whole trace (`ReplayResult.notices`: nothing in it was checked,
///   stores fell outside declared pmem, findings were left out) is not a result: each
///   is a `toolExecutionNotification` of the run's one invocation, at the trace, its
///   `descriptor` one of `tool.driver.notifications` (always all three, in a fixed order).
///
/// Keys are written in a fixed order: the same trace gives the same bytes.
public struct SARIFReport {
    public static let schemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    public static let fingerprintKey = "powercut/v\(Fingerprint.version)"

    public var toolVersion: String
    public var sourceRoot: SourceRoot

    public init(toolVersion: String, sourceRoot: SourceRoot = .current) {
        self.toolVersion = toolVersion
        self.sourceRoot = sourceRoot
    }

    /// `%SRCROOT%`: the base of every relative URI.
    public static let rootBaseID = "%SRCROOT%"

    public func render(_ triage: Triage) -> String {
        var w = JSONWriter(pretty: true)
        var run = RunState(triage: triage)
        w.beginObject()
        w.string("$schema", Self.schemaURI)
        w.string("version", "2.1.0")
        w.beginArray("runs")
        w.beginObject()
        writeTool(into: &w)
        w.beginObject("originalUriBaseIds")
        w.beginObject(Self.rootBaseID)
        w.string("uri", sarifURI(sourceRoot.path.hasSuffix("/") ? sourceRoot.path : sourceRoot.path + "/"))
        w.endObject()
        w.endObject()
        w.beginArray("artifacts")
        for path in run.artifacts {
            w.beginObject()
            writeArtifact(path, key: "location", index: nil, into: &w)
            w.raw("roles", "[\"analysisTarget\"]")
            w.endObject()
        }
        w.endArray()
        w.beginArray("results")
        for (i, t) in triage.traces.enumerated() {
            for (k, f) in t.result.findings.enumerated() {
                writeResult(f, entry: triage.entries[i][k], trace: i, into: &w, run: &run)
            }
        }
        w.endArray()
        // After the results: they decide which modules are listed.
        w.beginArray("addresses")
        for m in run.modules {
            w.beginObject()
            if m.base <= UInt64(Int64.max) { w.number("absoluteAddress", m.base) }
            w.number("length", m.size)
            w.string("kind", "module")
            w.string("name", baseName(m.path))
            w.string("fullyQualifiedName", m.path)
            w.endObject()
        }
        w.endArray()
        writeInvocation(triage, into: &w, run: run)
        let reported = Summary(triage.reportedTraces)
        w.beginObject("properties")
        w.number("traces", triage.traces.count)
        w.number("events", reported.events)
        w.number("errors", reported.errors)
        w.number("warnings", reported.warnings)
        w.number("notes", reported.notes)
        w.number("known", triage.knownCount)
        w.number("suppressed", triage.suppressedCount)
        w.endObject()
        w.endObject()
        w.endArray()
        w.endObject()
        return w.output + "\n"
    }

    private func writeTool(into w: inout JSONWriter) {
        w.beginObject("tool")
        w.beginObject("driver")
        w.string("name", "powercut")
        w.string("version", toolVersion)
        w.string("semanticVersion", toolVersion)
        w.beginArray("rules")
        for rule in Rule.allCases {
            w.beginObject()
            w.string("id", rule.rawValue)
            w.string("name", rule.rawValue.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined())
            w.beginObject("shortDescription")
            w.string("text", rule.summary)
            w.endObject()
            w.beginObject("fullDescription")
            w.string("text", rule.help)
            w.endObject()
            w.beginObject("help")
            w.string("text", "\(rule.summary) (\(rule.severity)). \(rule.help) "
                + "Each result names the byte ranges at risk, their position in the destination (head, body, tail), "
                + "their state, the store that left them, its call stack, and what is missing. "
                + "Run `powercut check TRACE` for the byte-by-byte report.")
            w.endObject()
            w.beginObject("defaultConfiguration")
            w.string("level", Self.level(rule.severity))
            w.endObject()
            w.beginObject("properties")
            w.raw("tags", "[\"persistent-memory\",\"crash-consistency\"]")
            w.string("precision", "very-high")
            w.endObject()
            w.endObject()
        }
        w.endArray()
        w.beginArray("notifications")
        for (id, level, text) in Self.notices {
            w.beginObject()
            w.string("id", id)
            w.beginObject("shortDescription")
            w.string("text", text)
            w.endObject()
            w.beginObject("defaultConfiguration")
            w.string("level", Self.level(level))
            w.endObject()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        w.endObject()
    }

    /// The notices a trace may get (`ReplayResult.notices`), in `tool.driver.notifications` order.
    static let notices: [(id: String, level: Severity, text: String)] = [
        ("nothing-checked", .warning, "Nothing in the trace was checked: no op with a contract and no durable assertion."),
        ("stores-outside-pmem", .note, "Stores wrote bytes outside every declared pmem range; those bytes are not tracked."),
        ("findings-omitted", .note, "More findings than --max-findings: the rest are counted, not listed."),
    ]

    /// The run's invocation, with a notification per trace notice (only when there is one).
    private func writeInvocation(_ triage: Triage, into w: inout JSONWriter, run: RunState) {
        let all = triage.traces.enumerated().flatMap { i, t in t.result.notices.map { (i, $0) } }
        guard !all.isEmpty else { return }
        w.beginArray("invocations")
        w.beginObject()
        w.bool("executionSuccessful", true)
        w.beginArray("toolExecutionNotifications")
        for (i, n) in all {
            w.beginObject()
            w.beginArray("locations")
            w.beginObject()
            w.beginObject("physicalLocation")
            traceArtifact(i, line: nil, into: &w, run: run)
            w.endObject()
            w.endObject()
            w.endArray()
            w.beginObject("message")
            w.string("text", "\(triage.traces[i].file): \(n.message).")
            w.endObject()
            w.string("level", Self.level(n.severity))
            w.beginObject("descriptor")
            w.string("id", n.id)
            if let k = Self.notices.firstIndex(where: { $0.id == n.id }) { w.number("index", k) }
            w.endObject()
            w.beginObject("properties")
            w.string("trace", triage.traces[i].file)
            w.endObject()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        w.endArray()
    }

    static func level(_ s: Severity) -> String {
        switch s {
        case .error: "error"
        case .warning: "warning"
        case .note: "note"
        }
    }

    /// The artifacts (traces) and modules results refer to, in first-use order.
    private struct RunState {
        var triage: Triage
        /// The trace files, as given.
        var artifacts: [String] = []
        var traceArtifact: [Int] = []
        var modules: [Module] = []

        init(triage: Triage) {
            self.triage = triage
            for t in triage.traces {
                if let i = artifacts.firstIndex(of: t.file) { traceArtifact.append(i) } else {
                    traceArtifact.append(artifacts.count)
                    artifacts.append(t.file)
                }
            }
        }

        mutating func moduleIndex(_ m: Module) -> Int {
            if let i = modules.firstIndex(of: m) { return i }
            modules.append(m)
            return modules.count - 1
        }
    }

    private func writeResult(_ f: Finding, entry: Triage.Entry, trace ti: Int, into w: inout JSONWriter, run: inout RunState) {
        let t = run.triage.traces[ti]
        let frames = run.triage.frames
        let lines = run.triage.eventLines[ti]
        w.beginObject()
        w.string("ruleId", f.rule.rawValue)
        w.number("ruleIndex", Rule.allCases.firstIndex(of: f.rule)!)
        w.string("level", Self.level(f.severity))
        // The primary location: the origin stack's frame in the user's own code, else the trace.
        let origin = frames.frames(f.originStack, in: t)
        let own = sourceRoot.ownFrame(origin)
        let originLine = f.originEvent.flatMap { lines[$0] }
        w.beginObject("message")
        var text = message(f)
        if let own, let chain = SourceRoot.inlineChain(origin, own: own) { text += " Stored by \(chain)." }
        w.string("text", text)
        w.endObject()
        writeArtifact(t.file, key: "analysisTarget", index: run.traceArtifact[ti], into: &w)

        w.beginArray("locations")
        w.beginObject()
        if let own, origin[own].module != nil || origin[own].file != nil {
            writeFrameLocation(origin[own], into: &w, run: &run)
        } else if let inner = origin.first, inner.module != nil || inner.file != nil {
            writeFrameLocation(inner, into: &w, run: &run)
        } else {
            w.beginObject("physicalLocation")
            if let inner = origin.first { writeAddress(inner, into: &w, run: &run) }
            traceArtifact(ti, line: originLine, into: &w, run: run)
            w.endObject()
        }
        w.endObject()
        w.endArray()

        w.beginArray("relatedLocations")
        w.beginObject()
        w.number("id", 1)
        w.beginObject("physicalLocation")
        traceArtifact(ti, line: originLine, into: &w, run: run)
        w.endObject()
        w.beginObject("message")
        let what = f.ranges.first?.event.map { "\(f.ranges[0].nonTemporal ? "ntstore" : "store") #\($0)" }
            ?? f.event.map { "event #\($0)" } ?? "the end of the trace"
        w.string("text", "\(what) in the trace")
        w.endObject()
        w.endObject()
        w.endArray()

        // Every distinct stack: the stores' (in range order), then the deciding event's.
        var stackIDs: [(id: UInt32, label: String)] = []
        var storesOf: [UInt32: [String]] = [:]
        for r in f.ranges where r.stack != 0 {
            let store = "\(r.nonTemporal ? "ntstore" : "store") \(r.event.map { "#\($0)" } ?? "?")"
            if storesOf[r.stack] == nil { stackIDs.append((r.stack, "")) }
            if storesOf[r.stack, default: []].contains(store) == false { storesOf[r.stack, default: []].append(store) }
        }
        for i in stackIDs.indices {
            let stores = storesOf[stackIDs[i].id] ?? []
            stackIDs[i].label = "call stack of \(stores.joined(separator: ", ")), which left bytes at risk"
        }
        if f.stack != 0 && !stackIDs.contains(where: { $0.id == f.stack }) {
            let what = f.event.map { "#\($0)" + (f.eventKind.map { " (\($0.keyword))" } ?? "") } ?? "the deciding event"
            stackIDs.append((f.stack, "call stack of \(what), where the finding was decided"))
        }
        if !stackIDs.isEmpty {
            w.beginArray("stacks")
            for (id, label) in stackIDs {
                w.beginObject()
                w.beginObject("message")
                w.string("text", label)
                w.endObject()
                w.beginArray("frames")
                for frame in frames.frames(id, in: t) {
                    w.beginObject()
                    w.beginObject("location")
                    writeFrameLocation(frame, into: &w, run: &run)
                    w.endObject()
                    if let m = frame.moduleName { w.string("module", m) }
                    w.endObject()
                }
                w.endArray()
                w.endObject()
            }
            w.endArray()
        }

        w.beginObject("partialFingerprints")
        w.string(Self.fingerprintKey, entry.fingerprint.hash)
        w.endObject()
        if run.triage.hasBaseline {
            w.string("baselineState", entry.inBaseline ? "unchanged" : "new")
        }
        if case .suppressed(let s) = entry.status {
            w.beginArray("suppressions")
            w.beginObject()
            w.string("kind", "external")
            w.string("status", "accepted")
            w.string("justification", "suppressed by \(s.label)")
            w.beginObject("location")
            w.beginObject("physicalLocation")
            writeArtifact(s.file, key: "artifactLocation", index: nil, into: &w)
            if s.line > 0 {
                w.beginObject("region")
                w.number("startLine", s.line)
                w.endObject()
            }
            w.endObject()
            w.endObject()
            w.endObject()
            w.endArray()
        }

        w.beginObject("properties")
        w.string("trace", t.file)
        w.number("op", f.op?.id)
        w.string("opName", f.op?.name)
        w.string("contract", f.op?.contract.description)
        w.number("cut", f.cut)
        w.number("event", f.event)
        w.number("bytes", f.bytes)
        w.number("omittedRanges", f.omittedRanges)
        w.string("line", f.line.map { "0x" + hex($0) })
        w.string("fingerprint", entry.fingerprint.key)
        w.beginArray("ranges")
        for r in f.ranges { JSONReport.write(r, stack: nil, into: &w) }
        w.endArray()
        w.endObject()
        w.endObject()
    }

    /// Headline as the first sentence, then the ranges.
    private func message(_ f: Finding) -> String {
        var s = f.headline + "."
        let shown = f.ranges.prefix(4)
        for r in shown {
            s += " \(r.summary)"
            s += r.missing == .none ? "." : "; missing: \(r.missingText)."
        }
        let more = f.ranges.count - shown.count + f.omittedRanges
        if more > 0 { s += " And \(more) more range\(more == 1 ? "" : "s")." }
        return s
    }

    /// A frame as a location: its source line when known, else its module and offset.
    private func writeFrameLocation(_ frame: StackFrame, into w: inout JSONWriter, run: inout RunState) {
        w.beginObject("physicalLocation")
        writeAddress(frame, into: &w, run: &run)
        if let file = frame.file {
            writeArtifact(file, key: "artifactLocation", index: nil, into: &w)
            if let line = frame.line, line > 0 {
                w.beginObject("region")
                w.number("startLine", line)
                w.endObject()
            }
        } else if let m = frame.module {
            writeArtifact(m.path, key: "artifactLocation", index: nil, into: &w)
        }
        w.endObject()
        if let function = frame.function {
            w.beginArray("logicalLocations")
            w.beginObject()
            w.string("name", function)
            w.string("kind", "function")
            w.endObject()
            w.endArray()
        }
    }

    private func writeAddress(_ frame: StackFrame, into w: inout JSONWriter, run: inout RunState) {
        w.beginObject("address")
        if frame.address <= UInt64(Int64.max) { w.number("absoluteAddress", frame.address) }
        if let m = frame.module, let offset = frame.offset {
            w.number("relativeAddress", offset)
            w.number("offsetFromParent", offset)
            w.number("parentIndex", run.moduleIndex(m))
        }
        w.string("kind", "instruction")
        w.string("name", frame.moduleOffset ?? "0x" + hex(frame.address))
        if let function = frame.function { w.string("fullyQualifiedName", frame.file != nil ? frame.text : function) }
        w.endObject()
    }

    /// An artifact location under `key`: relative to `%SRCROOT%` when under the source
    /// root, else an absolute `file://` URI.
    private func writeArtifact(_ path: String, key: String, index: Int?, into w: inout JSONWriter) {
        w.beginObject(key)
        if path != "-", let relative = sourceRoot.relative(path) {
            w.string("uri", sarifURI(relative))
            w.string("uriBaseId", Self.rootBaseID)
        } else if path == "-" {
            w.string("uri", "-")
        } else {
            w.string("uri", sarifURI(SourceRoot.normalize(SourceRoot.absolute(path))))
        }
        if let index { w.number("index", index) }
        w.endObject()
    }

    private func traceArtifact(_ ti: Int, line: Int?, into w: inout JSONWriter, run: RunState) {
        writeArtifact(run.artifacts[run.traceArtifact[ti]], key: "artifactLocation", index: run.traceArtifact[ti], into: &w)
        if let line {
            w.beginObject("region")
            w.number("startLine", line)
            w.endObject()
        }
    }
}

/// A file path as a URI reference: absolute paths as `file:///…`, relative ones kept
/// relative (code scanning resolves them against the checkout), every byte outside the
/// unreserved set and `/` percent-encoded.
func sarifURI(_ path: String) -> String {
    var out = path.hasPrefix("/") ? "file://" : ""
    for b in path.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"), UInt8(ascii: "+"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let h = String(b, radix: 16, uppercase: true)
            out += "%" + (h.count == 1 ? "0" : "") + h
        }
    }
    return out
}
