import ArgumentParser
import PowercutModel
import PowercutReport
import PowercutTrace

extension Domain: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, brief
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
            Exit status: 0 no error finding, 1 (or --error-exitcode) error findings, 65 a trace is malformed.
            """
    )

    @Argument(help: "Trace files (text or binary; '-' for standard input).")
    var files: [String]

    @OptionGroup var model: ModelOptions

    @Option(help: "Report format: text, json or brief.")
    var format: ReportFormat = .text

    @Flag(help: "Also show, per cut point, the at-risk bytes by state.")
    var cuts = false

    @Option(help: "Exit status when there are error findings.")
    var errorExitcode: Int32 = ExitStatus.findings

    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (crash-safely) instead of standard output.")
    var output: String?

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one trace file ('-' reads standard input)") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("'-' (standard input) can be named only once") }
    }

    func run() throws {
        try reporting {
            var checked: [CheckedTrace] = []
            for file in files {
                let (result, reader) = try Replayer.replay(file: file, options: model.replayOptions(cuts: cuts))
                checked.append(CheckedTrace(file: file, form: reader.form, header: reader.header,
                                            stacks: reader.stacks, result: result))
            }
            let summary = Summary(checked)
            var text: String
            switch format {
            case .json:
                text = JSONReport().render(checked)
            case .brief:
                text = checked.map { BriefReport().render($0) }.joined()
            case .text:
                text = ""
                for t in checked {
                    text += TextReport().render(t)
                    if cuts { text += "\n" + CutsReport().render(t) }
                }
                text += "powercut: \(summary.line)\n"
            }
            try emit(text, to: output)
            if summary.errors > 0 { throw ExitCode(errorExitcode) }
        }
    }
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
            try convertTrace(from: input, to: output, form: form)
        }
    }
}
