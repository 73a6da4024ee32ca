import ArgumentParser
import Foundation
import PowercutModel
import PowercutReport
import PowercutSymbolize
import PowercutTriage
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

extension Domain: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, brief, sarif, junit, github

    /// One document that nothing else may share standard output with.
    var isDocument: Bool { self == .json || self == .sarif || self == .junit }
}

/// Options every command that replays shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Persistence domain: adr, eadr or wpq (overrides the trace's).")
    var domain: Domain?

    @Flag(help: "A non-temporal store evicts its line's other dirty bytes (they become flushing).")
    var ntEvicts = false

    @Flag(help: "clflush needs a later fence, like clflushopt.")
    var strictClflush = false

    func replayOptions(cuts: Bool = false) -> ReplayOptions {
        ReplayOptions(domain: domain, ntEvicts: ntEvicts, strictClflush: strictClflush, recordCuts: cuts)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay trace files over every cut point and report what a power failure could lose.",
        discussion: """
            Each FILE is a text or binary trace (told apart by content); '-' reads standard input. \
            With --baseline, findings whose fingerprint is in the baseline are known and do not fail the run; \
            with --suppressions, findings a Valgrind-style block matches are left out. \
            Exit status: 0 no (new, unsuppressed) error finding, 1 (or --error-exitcode) error findings, \
            64 usage error, 65 a malformed trace, baseline or suppression file, 70 internal error. \
            A trace in which nothing was checked (no op with a contract, no durable assertion) gets the \
            warning "nothing-checked" in every format but does not change the exit status by itself.
            """
    )

    @Argument(help: "Trace files (text or binary; '-' for standard input).")
    var files: [String]

    @OptionGroup var model: ModelOptions
    @OptionGroup var symbols: SymbolOptions

    @Option(help: "Report format: text, json, brief, sarif (SARIF 2.1.0), junit (JUnit XML) or github (workflow annotations).")
    var format: ReportFormat = .text

    @Option(help: ArgumentHelp("SARIF and GitHub paths are relative to DIR (default: the current directory).", valueName: "dir"))
    var sourceRoot: String?

    @Option(help: ArgumentHelp("Keep at most N findings per trace in the report; the rest are counted (a findings-omitted note) and still count toward the exit status.", valueName: "N"))
    var maxFindings = 100_000

    @Flag(help: "Also show, per cut point, the at-risk bytes by state (text and json).")
    var cuts = false

    @Option(help: ArgumentHelp("Exit status when there are error findings: 1-255 (64, 65 and 70 would be mistaken for a usage error, bad data and an internal error).", valueName: "N"))
    var errorExitcode: Int32 = ExitStatus.findings

    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (crash-safely) instead of standard output.")
    var output: String?

    @Option(help: ArgumentHelp("Known findings: only findings whose fingerprint is not in FILE fail the run.", valueName: "file"))
    var baseline: String?

    @Option(help: ArgumentHelp("Write the fingerprints of the current (unsuppressed) findings to FILE, crash-safely.", valueName: "file"))
    var writeBaseline: String?

    @Option(help: ArgumentHelp("Leave out findings matched by the Valgrind-style blocks in FILE (repeatable).", valueName: "file"))
    var suppressions: [String] = []

    @Flag(help: "Print a suppression block for each reported finding on standard output, after the report.")
    var genSuppressions = false

    func validate() throws {
        if maxFindings < 1 { throw ValidationError("--max-findings \(maxFindings) is out of range (expected at least 1)") }
        if files.isEmpty { throw ValidationError("name at least one trace file ('-' reads standard input)") }
        if !(1...255).contains(errorExitcode) {
            throw ValidationError("--error-exitcode \(errorExitcode) is out of range (expected 1 to 255; an exit status has 8 bits and 0 means success)")
        }
        try requireName(output, "-o/--output")
        try requireName(baseline, "--baseline")
        try requireName(writeBaseline, "--write-baseline")
        try requireName(sourceRoot, "--source-root")
        for s in suppressions { try requireName(s, "--suppressions") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("'-' (standard input) can be named only once") }
        if genSuppressions && format.isDocument && (output == nil || output == "-") {
            throw ValidationError("--gen-suppressions prints to standard output, which --format \(format.rawValue) needs whole; write the report elsewhere with -o FILE")
        }
    }

    func run() throws {
        try reporting {
            do {
                try check()
            } catch let e as ConfigFileError {
                throw Failure.badData(e.description)
            }
        }
    }

    private func check() throws {
        // The configuration first: a bad file fails before any work.
        let suppressionList = try SuppressionList.load(suppressions)
        let known = try baseline.map(Baseline.load)

        var options = model.replayOptions(cuts: cuts)
        options.keepOps = format == .junit
        options.maxFindings = maxFindings
        var checked: [CheckedTrace] = []
        for file in files {
            let (result, reader) = try Replayer.replay(file: file, options: options)
            checked.append(CheckedTrace(file: file, form: reader.form, header: reader.header,
                                        stacks: reader.stacks, result: result))
        }
        let frames = symbols.resolver()
        defer { symbols.finish(frames, notes: false) }
        frames.prefetch(checked)
        var triage = Triage(checked, suppressions: suppressionList, baseline: known, frames: frames)
        if format == .sarif || format == .github { triage.locateEvents() }
        let shown = triage.reportedTraces
        let summary = Summary(shown)
        var note = triage.countsNote(baseline: baseline != nil, suppressions: !suppressions.isEmpty)
        let unchecked = shown.count { !$0.result.checkedAnything }
        if unchecked > 0 { note += "; nothing checked in \(count(unchecked, "trace"))" }
        var text: String
        switch format {
        case .json:
            text = JSONReport().render(shown)
        case .brief:
            text = shown.map { BriefReport().render($0) }.joined()
        case .sarif:
            text = SARIFReport(toolVersion: PowercutVersion.release, sourceRoot: sourceRoot.map(SourceRoot.init) ?? .current).render(triage)
        case .junit:
            text = JUnitReport(frames: frames).render(triage)
        case .github:
            text = GitHubReport(sourceRoot: sourceRoot.map(SourceRoot.init) ?? .current).render(triage) + "powercut: \(summary.line)\(note)\n"
        case .text:
            text = ""
            for t in shown {
                text += TextReport(frames: frames).render(t)
                if cuts { text += "\n" + CutsReport().render(t) }
            }
            text += "powercut: \(summary.line)\(note)\n"
            for (s, n) in triage.usedSuppressions {
                text += "powercut: suppressed \(n) finding\(n == 1 ? "" : "s") with \(s.label)\n"
            }
        }
        // The baseline before the report: if it cannot be written, nothing claims success.
        if let writeBaseline {
            try writeOutput(triage.baselineText, to: writeBaseline)
        }
        var blocks = ""
        if genSuppressions {
            blocks = SuppressionList.generate(triage.reportedFindings, frames: frames)
        }
        if let output, output != "-" {
            try writeOutput(text, to: output)
            if !blocks.isEmpty { try writeStdout(blocks) }
        } else {
            try emit(text + (blocks.isEmpty ? "" : (format == .text ? "\n" : "") + blocks), to: nil)
        }
        if triage.reportedErrors > 0 { throw ExitCode(errorExitcode) }
    }
}

/// Writes a report or baseline crash-safely. OutputFile writes a temporary file and
/// renames it into place; a symbolic link is followed (its target replaced) and a
/// device or FIFO (`/dev/null`, `/dev/stdout`) is written in place.
func writeOutput(_ text: String, to path: String) throws {
    try OutputFile.write(text, to: path)
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a trace between the text and binary forms, without loss.",
        discussion: "The output form follows OUT's extension (.pctb binary, otherwise text) unless --to says."
    )

    @Argument(help: "The trace to read (text or binary; '-' for standard input).")
    var input: String

    @Argument(help: "Where to write it ('-' for standard output).")
    var output: String

    @Option(help: "Output form: text or binary.")
    var to: FormArgument?

    enum FormArgument: String, ExpressibleByArgument, CaseIterable { case text, binary }

    func run() throws {
        try reporting {
            let form: TraceForm
            if let to { form = to == .binary ? .binary : .text }
            else { form = output.hasSuffix(".pctb") ? .binary : .text }
            if output == "-" {
                try convertToStandardOutput(form: form)
            } else {
                try convertTrace(from: input, to: output, form: form)
            }
        }
    }

    func validate() throws {
        try requireName(output, "OUT")
    }

    /// Converts into a temporary file first, then copies it out: a trace found malformed
    /// part way writes nothing to standard output (exit 65 with nothing half-written).
    private func convertToStandardOutput(form: TraceForm) throws {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((dir + "/powercut-convert-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Failure.internal("cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))") }
        close(fd)
        let path = String(cString: template)
        defer { unlink(path) }
        try convertTrace(from: input, to: path, form: form)
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw Failure.internal("cannot read back \(path): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure.internal("cannot read back \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(1, $0.baseAddress! + done, n - done) }
                if w < 0 && errno == EINTR { continue }
                if w < 0 { throw stdoutFailure(errno) }
                done += w
            }
        }
    }
}
