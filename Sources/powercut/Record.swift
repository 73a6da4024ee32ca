import ArgumentParser
import Glibc
import PowercutModel
import PowercutRecorder
import PowercutSweep
import PowercutTrace

extension Contract: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.description) }
}

/// `--contract` by name: ArgumentParser shows a UInt8-backed enum's default as its raw
/// value ("(default: 0)"), so the option takes this String-backed twin.
enum ContractArgument: String, ExpressibleByArgument, CaseIterable {
    case flushcache, persist, none

    var contract: Contract {
        switch self {
        case .flushcache: .flushcache
        case .persist: .persist
        case .none: .none
        }
    }
}

enum DrainArgument: String, ExpressibleByArgument, CaseIterable { case sfence, none }

/// Which routine: a built-in subject or --lib/--symbol.
struct RoutineOptions: ParsableArguments {
    @Option(help: "A shared library to load the routine from (path, or a name the loader finds, e.g. libpmem.so.1).")
    var lib: String?

    @Option(help: "The exported function to record, `void f(void *dst, const void *src, size_t n)` (with --lib).")
    var symbol: String?

    @Option(help: "A harness library exporting `void powercut_case(void *dst, const void *src, size_t n)`, which adapts any routine (flags, a returned count, a log append) to one call per case.")
    var harness: String?

    func routines(_ subjects: [String]) throws -> [Routine] {
        if let harness {
            guard lib == nil, symbol == nil else { throw ValidationError("--harness LIB calls powercut_case: give it without --lib/--symbol") }
            guard subjects.isEmpty else { throw ValidationError("name built-in subjects or --harness, not both") }
            return [.harness(harness)]
        }
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
            The trace is written crash-safely; .pctb gives the binary form. \
            The routine runs in a child process with a time limit (--timeout): whatever it does \
            (crash, exit, hang, print — its output goes to standard error) costs only the child. \
            Exit status: 0 trace written; 64 usage (no such subject, library or symbol); \
            65 the routine cannot be recorded: it crashed (the signal is named), ended the process \
            (also from its library's constructor), ran past --timeout or --budget, took SIGTRAP away \
            or installed a signal handler during the call, or ran an instruction that may write \
            memory or order stores which the recorder cannot place; 70 internal error.
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
    var contract: ContractArgument = .flushcache

    @Option(help: "The caller's drain after the op: sfence (recorded) or none.")
    var drain: DrainArgument = .sfence

    @Flag(help: "Record the bytes each store wrote (data=).")
    var data = false

    @Option(help: "Instructions allowed before the recording is abandoned (0: no limit).")
    var budget: UInt64 = 10_000_000

    @Option(help: "Seconds the routine may run (loading its library included) before it is killed.")
    var timeout: Double = 60

    @Option(name: .shortAndLong, help: "The trace file to write (.pct text, .pctb binary; '-' for standard output).")
    var output: String

    /// Set in the child that loads and records the routine (internal).
    @Flag(help: .hidden)
    var isolatedChild = false

    /// With --isolated-child: load and resolve only (what a sweep checks first).
    @Flag(help: .hidden)
    var probe = false

    func validate() throws {
        guard len >= 0, len <= 1 << 26 else { throw ValidationError("--len must be from 0 to 64 MiB") }
        guard dstOffset >= 0, dstOffset < 1 << 20, srcOffset >= 0, srcOffset < 1 << 20 else {
            throw ValidationError("offsets must be from 0 to 1 MiB")
        }
        if subject == nil && routine.lib == nil && routine.harness == nil {
            throw ValidationError("name a built-in subject, --lib PATH --symbol NAME, or --harness PATH")
        }
        if let problem = TimeLimit.problem(timeout) { throw ValidationError(problem) }
        if output.isEmpty { throw ValidationError("-o needs a file name ('-' for standard output)") }
    }

    func run() throws {
        if isolatedChild { return runChild() }
        try reporting {
            let r = try routine.routines(subject.map { [$0] } ?? []).first!
            var arguments = Array(CommandLine.arguments.dropFirst())
            arguments.append("--isolated-child")
            let child: IsolatedRun
            do {
                child = try IsolatedRun.run(executable: selfPath(), arguments: arguments, timeout: timeout)
            } catch {
                throw Failure.internal("\(error)")
            }
            if let failure = child.failure(r) {
                switch failure.reason {
                case .recorder(.routine, _), .recorder(.usage, _): throw Failure.usage(failure.description)
                default: throw Failure.badData(failure.description)
                }
            }
            let (events, handlers) = child.done!
            let file = try OutputFile(path: output)
            try file.write(child.payload)
            try file.commit()
            if output != "-" {
                printError("recorded \(count(events, "event")) of \(r) (dst+\(dstOffset), src+\(srcOffset), \(count(len, "byte"))) to \(output)")
            }
            if handlers > 0 {
                printError("note: \(handlers) signal handler\(handlers == 1 ? "" : "s") ran during the call; stepped, \(handlers == 1 ? "its" : "their") stores are in the trace")
            }
        }
    }

    /// In the child: load, record, write the trace on descriptor 3, say how it went on 4.
    private func runChild() {
        restoreCrashSignals()
        do {
            let r = try routine.routines(subject.map { [$0] } ?? []).first!
            let harness = try harness(for: r)
            RoutineChild.send("loaded")
            if probe {
                RoutineChild.send("done 0 0")
                _exit(0)
            }
            var options = Harness.Options()
            options.contract = contract.contract
            options.drain = drain == .sfence
            options.captureData = data
            options.budget = budget
            let trace = try harness.record(dstOffset: dstOffset, srcOffset: srcOffset, length: len, options: options,
                                           modules: true, meta: [("write-back", Routine.subjectWriteBack)])
            let handlers = Recorder.shared.handlersStepped
            // The routine is done: what it printed goes to standard error, the trace to
            // the result descriptor.
            fflush(nil)
            dup2(IsolatedRun.resultDescriptor, 1)
            try trace.write(to: "-", form: output.hasSuffix(".pctb") ? .binary : .text)
            RoutineChild.send("done \(trace.eventCount) \(handlers)")
        } catch let e as RecorderError {
            RoutineChild.send(e)
        } catch {
            RoutineChild.send("error recording other \(error)")
        }
        fflush(nil)
        _exit(0)
    }

    private func harness(for r: Routine) throws -> Harness {
        try Harness(routine: r, maxLength: len, maxOffset: max(dstOffset, srcOffset) + 1)
    }
}
