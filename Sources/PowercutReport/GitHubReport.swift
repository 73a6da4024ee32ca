import PowercutModel
import PowercutSymbolize
import PowercutTrace
import PowercutTriage

/// `--format github`: GitHub Actions workflow commands, one per reported finding, which
/// the runner turns into annotations on the run and, where the file is in the diff, on
/// the pull request:
///
///     ::error file=Traces/t.pct,line=9,title=powercut dirty-at-return::op 1 (memcpy_flushcache) returned at #5 …%0A   0x10048-0x10049 …
///
/// The annotation sits at the source line of the origin stack's frame in the user's own
/// code (`SourceRoot.ownFrame`: not an inlined helper, under the source root) when a
/// symbolizer knows it, the inline chain down to it in the message; otherwise at the trace file, on the
/// line of the store that left the bytes (or of the deciding event) in a text trace.
/// Errors are `::error`, warnings `::warning`, notes `::notice`. The message is the
/// finding's Valgrind-style report; a summary line closes the output. What holds for a
/// whole trace (`ReplayResult.notices`: nothing checked, stores outside pmem, findings
/// left out) follows its findings, at the trace file, with the same levels:
///
///     ::warning file=Traces/t.pct,title=powercut nothing-checked::nothing in this trace was checked: … Findings a
/// baseline or suppression leaves out get no annotation. File paths under the source
/// root (`--source-root`, default the current directory) are relative to it, as the
/// runner needs them.
public struct GitHubReport {
    public var sourceRoot: SourceRoot

    public init(sourceRoot: SourceRoot = .current) { self.sourceRoot = sourceRoot }

    /// A path as the runner wants it: relative to the repository when under it.
    func path(_ file: String) -> String { sourceRoot.relative(file) ?? file }

    public func render(_ triage: Triage) -> String {
        var out = ""
        let text = TextReport(frames: triage.frames)
        for (i, t) in triage.traces.enumerated() {
            for (k, f) in t.result.findings.enumerated() where triage.entries[i][k].status == .reported {
                var props: [(String, String)] = []
                let origin = triage.frames.frames(f.originStack, in: t)
                let own = sourceRoot.ownFrame(origin)
                let inner = own.map { origin[$0] }
                if let file = inner?.file {
                    props.append(("file", path(file)))
                    if let line = inner?.line { props.append(("line", String(line))) }
                } else if t.file != "-" {
                    props.append(("file", path(t.file)))
                    if let line = f.originEvent.flatMap({ triage.eventLines[i][$0] }) { props.append(("line", String(line))) }
                }
                props.append(("title", "powercut \(f.rule.rawValue)"))
                let body = text.render(f, in: t)
                // Drop "severity: rule: ", which the annotation's level and title say.
                let prefix = "\(f.severity): \(f.rule.rawValue): "
                var message = body.hasPrefix(prefix) ? String(body.dropFirst(prefix.count)) : body
                if let own, let chain = SourceRoot.inlineChain(origin, own: own) {
                    message = (message.hasSuffix("\n") ? String(message.dropLast()) : message) + "\n   stored by \(chain)\n"
                }
                out += "::\(Self.command(f.severity)) "
                out += props.map { "\($0.0)=\(Self.escapeProperty($0.1))" }.joined(separator: ",")
                out += "::" + Self.escapeData(message.hasSuffix("\n") ? String(message.dropLast()) : message) + "\n"
            }
            for n in t.result.notices {
                var props: [(String, String)] = []
                if t.file != "-" { props.append(("file", path(t.file))) }
                props.append(("title", "powercut \(n.id)"))
                out += "::\(Self.command(n.severity)) "
                out += props.map { "\($0.0)=\(Self.escapeProperty($0.1))" }.joined(separator: ",")
                out += "::" + Self.escapeData((t.file == "-" ? "standard input: " : "") + n.message) + "\n"
            }
        }
        return out
    }

    static func command(_ s: Severity) -> String {
        switch s {
        case .error: "error"
        case .warning: "warning"
        case .note: "notice"
        }
    }

    /// The message of a workflow command: `%`, CR and LF encoded.
    public static func escapeData(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "%": out += "%25"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// A property value of a workflow command: as data, and `:` and `,` too.
    public static func escapeProperty(_ s: String) -> String {
        var out = ""
        for u in escapeData(s).unicodeScalars {
            switch u {
            case ":": out += "%3A"
            case ",": out += "%2C"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }
}
