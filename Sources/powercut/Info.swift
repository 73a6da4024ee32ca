import ArgumentParser
import PowercutReport
import PowercutTrace

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize a trace: form, version, domain, line size, pmem, modules, meta, events by kind, ops, stacks.",
        discussion: "Reads the trace without replaying it; memory stays bounded whatever its length."
    )

    @Argument(help: "The trace (text or binary; '-' for standard input).")
    var file: String

    func run() throws {
        try reporting {
            let info = try TraceInfo(reader: try TraceReader(path: file))
            try writeStdout(info.render())
        }
    }
}
