import ArgumentParser
import Foundation
import PowercutModel
import PowercutOutput
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

    @OptionGroup var options: CheckOptions

    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (crash-safely) instead of standard output.")
    var output: String?

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one trace file ('-' reads standard input)") }
        try requireName(output, "-o/--output")
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("'-' (standard input) can be named only once") }
        try options.validate(report: output, reportOption: "-o")
    }

    func run() throws {
        try reportingCheck {
            try options.check(files: files, report: output)
        }
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
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
