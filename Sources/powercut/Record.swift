import ArgumentParser
import PowercutModel
import PowercutRecorder
import PowercutTrace

extension Contract: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

enum DrainArgument: String, ExpressibleByArgument, CaseIterable { case sfence, none }

/// Which routine: a built-in subject or --lib/--symbol.
struct RoutineOptions: ParsableArguments {
    @Option(help: "A shared library to load the routine from (path, or a name the loader finds, e.g. libpmem.so.1).")
    var lib: String?

    @Option(help: "The exported function to record, `void f(void *dst, const void *src, size_t n)` (with --lib).")
    var symbol: String?

    func routines(_ subjects: [String]) throws -> [Routine] {
        if let lib {
            guard let symbol else { throw ValidationError("--lib needs --symbol NAME (the function to record)") }
            guard subjects.isEmpty else { throw ValidationError("name built-in subjects or --lib/--symbol, not both") }
            return [.library(path: lib, symbol: symbol)]
        }
        if symbol != nil { throw ValidationError("--symbol needs --lib PATH (the library that exports it)") }
        return subjects.map { .subject($0) }
    }
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the real instruction stream of one call of a copy routine into a trace.",
        discussion: """
            Single-steps the call in this process and logs every store, non-temporal store, \
            write-back and fence that touches the destination buffer (declared pmem), with call \
            stacks and the module map. Built-in subjects: \(Routine.subjects.map(\.name).joined(separator: ", ")). \
            The trace is written crash-safely; .pctb gives the binary form.
            """
    )

    @Argument(help: "A built-in subject (omit with --lib/--symbol).")
    var subject: String?

    @OptionGroup var routine: RoutineOptions

    @Option(help: "Destination offset from a page boundary.")
    var dstOffset: Int = 0

    @Option(help: "Source offset from a page boundary.")
    var srcOffset: Int = 0

    @Option(help: "Bytes to copy.")
    var len: Int

    @Option(help: "The routine's contract: flushcache, persist or none.")
    var contract: Contract = .flushcache

    @Option(help: "The caller's drain after the op: sfence (recorded) or none.")
    var drain: DrainArgument = .sfence

    @Flag(help: "Record the bytes each store wrote (data=).")
    var data = false

    @Option(help: "Instructions allowed before the recording is abandoned (0: no limit).")
    var budget: UInt64 = 10_000_000

    @Option(name: .shortAndLong, help: "The trace file to write (.pct text, .pctb binary; '-' for standard output).")
    var output: String

    func validate() throws {
        guard len >= 0, len <= 1 << 26 else { throw ValidationError("--len must be from 0 to 64 MiB") }
        guard dstOffset >= 0, dstOffset < 1 << 20, srcOffset >= 0, srcOffset < 1 << 20 else {
            throw ValidationError("offsets must be from 0 to 1 MiB")
        }
        if subject == nil && routine.lib == nil { throw ValidationError("name a built-in subject or --lib PATH --symbol NAME") }
    }

    func run() throws {
        try reporting {
            let r = try routine.routines(subject.map { [$0] } ?? []).first!
            let harness = try harness(for: r)
            var options = Harness.Options()
            options.contract = contract
            options.drain = drain == .sfence
            options.captureData = data
            options.budget = budget
            let trace = try harness.record(dstOffset: dstOffset, srcOffset: srcOffset, length: len, options: options,
                                           modules: true, meta: [("write-back", Routine.subjectWriteBack)])
            try trace.write(to: output, form: output.hasSuffix(".pctb") ? .binary : .text)
            if output != "-" {
                printError("recorded \(trace.eventCount) events of \(r) (dst+\(dstOffset), src+\(srcOffset), \(len) bytes) to \(output)")
            }
        }
    }

    private func harness(for r: Routine) throws -> Harness {
        try Harness(routine: r, maxLength: len, maxOffset: max(dstOffset, srcOffset) + 1)
    }
}
