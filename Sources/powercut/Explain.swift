import ArgumentParser
import PowercutCrash
import PowercutModel
import PowercutExplain
import PowercutSymbolize
import PowercutTrace

/// An address on the command line: hex with 0x, or decimal.
struct AddressArgument: ExpressibleByArgument {
    var value: UInt64

    init?(argument: String) {
        let s = argument.lowercased()
        if s.hasPrefix("0x") {
            guard let v = UInt64(s.dropFirst(2), radix: 16) else { return nil }
            value = v
        } else {
            guard let v = UInt64(s) else { return nil }
            value = v
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tell the story of chosen bytes across the cut points, and the fix.",
        discussion: """
            For the chosen bytes (default: those of the first error finding): every event that \
            touched their cache lines, with its stack and the states after it, up to the cut point \
            where durability was promised; what was still at risk there; and the exact fix. \
            --svg and --html also draw the timeline: cut points left to right, a row per cache line \
            and per run of chosen bytes, coloured by state.
            """
    )

    @Argument(help: "The trace (text or binary; '-' for standard input).")
    var file: String

    @Option(help: ArgumentHelp("The Nth finding, numbered as `powercut check` lists them.", valueName: "N"))
    var finding: Int?

    @Option(help: ArgumentHelp("One byte of pmem (0x… or decimal).", valueName: "ADDR"))
    var byte: AddressArgument?

    @Option(help: ArgumentHelp("The destination of op ID.", valueName: "ID"))
    var op: UInt64?

    @OptionGroup var model: ModelOptions
    @OptionGroup var symbols: SymbolOptions

    @Option(help: ArgumentHelp("Write the timeline picture to FILE (SVG).", valueName: "FILE"))
    var svg: String?

    @Option(help: ArgumentHelp("Write the picture, the story and a table to FILE (HTML).", valueName: "FILE"))
    var html: String?

    @Option(help: "Tell at most N relevant events, the first and last halves (0: all).")
    var limit: Int = 200

    @Option(help: ArgumentHelp("Tell why one crash image's bytes could be there: an image saved by `powercut crash` (the file, or the folder of range files).", valueName: "PATH"))
    var image: String?

    func validate() throws {
        if [finding != nil, byte != nil, op != nil].filter({ $0 }).count > 1 {
            throw ValidationError("choose one of --finding, --byte and --op")
        }
        if image != nil && (finding != nil || byte != nil || op != nil || svg != nil || html != nil) {
            throw ValidationError("--image explains one crash image; it takes none of --finding, --byte, --op, --svg, --html")
        }
        try requireName(image, "--image")
        if let finding, finding < 1 { throw ValidationError("--finding counts from 1, as `powercut check` lists findings") }
        if limit < 0 { throw ValidationError("--limit must be 0 (all) or more") }
        try requireName(svg, "--svg")
        try requireName(html, "--html")
    }

    func run() throws {
        if let image { return try explainImage(image) }
        try reporting {
            let trace = try Trace(contentsOf: file)
            let selector: ExplainSelector =
                if let finding { .finding(finding) }
                else if let byte { .byte(byte.value) }
                else if let op { .op(op) }
                else { .firstError }
            let explanation: Explanation
            do {
                explanation = try Explainer(options: model.replayOptions(), limit: limit)
                    .explain(trace, file: file, selector: selector)
            } catch let e as ExplainError {
                throw Failure.usage(e.description)
            }
            let frames = symbols.resolver()
            defer { symbols.finish(frames) }
            let text = ExplainTextReport(frames: frames).render(explanation)
            if let svg { try OutputFile.write(TimelinePicture(explanation).svg(), to: svg) }
            if let html {
                try OutputFile.write(TimelinePicture(explanation).html(story: text, frames: frames), to: html)
            }
            try writeStdout(text)
        }
    }

    /// The first cut that can leave this image, and per line which writes it kept and
    /// which it lost (the crash-image observer does the work, as for `crash`).
    private func explainImage(_ image: String) throws {
        try reporting {
            var options = CrashOptions()
            options.replay = model.replayOptions()
            let explanation = try CrashSession(path: file, options: options).explain(imagePath: image)
            try writeStdout(explanation.wording(image: image))
            if explanation.cut == nil { throw ExitCode(ExitStatus.findings) }
        }
    }
}
