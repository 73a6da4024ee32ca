import ArgumentParser
import PowercutReport
import PowercutSymbolize
#if canImport(Glibc)
import Glibc
#endif
import PowercutTrace

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every record of a trace in order, events numbered #N, stacks symbolized.",
        discussion: """
            The header as the text form writes it, then each event with its number, indented \
            inside its op, and its call stack (`at`/`by` lines, symbolized from the trace's module \
            map when the binaries are on this machine). The dump streams: a trace found malformed \
            part way ends it with the error on standard error (exit 65).
            """
    )

    @Argument(help: "The trace (text or binary; '-' for standard input).")
    var file: String

    @OptionGroup var symbols: SymbolOptions

    @Option(help: "Show at most N bytes of a store's data (0: none).")
    var dataBytes: Int = 32

    func validate() throws {
        if dataBytes < 0 { throw ValidationError("--data-bytes must be 0 or more") }
    }

    func run() throws {
        try reporting {
            let reader = try TraceReader(path: file)
            let frames = symbols.resolver()
            defer { symbols.finish(frames) }
            // The first failed write ends the dump with an error (exit 70).
            var failed: Int32?
            try TraceDump(frames: frames, dataBytes: dataBytes).render(reader) { chunk in
                if failed == nil && !writeAll(1, chunk) { failed = errno }
            }
            if let failed { throw stdoutFailure(failed) }
        }
    }
}
