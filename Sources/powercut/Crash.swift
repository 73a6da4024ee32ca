import ArgumentParser
import PowercutCrash
import PowercutModel
import PowercutSymbolize
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

enum CrashFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, sarif, junit
}

extension CutSelection: ExpressibleByArgument {}

struct Crash: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a recovery checker on every distinct state a power failure can leave in persistent memory.",
        discussion: """
            The trace must carry the bytes written (data= on every store to tracked memory; record with --data). \
            A checker says 0 (consistent), 125 (cannot tell: skip) or anything else (inconsistent); one that crashes \
            or runs past --timeout is an inconsistent image of its own kind. --check-cmd runs CMD through the shell \
            with the image's path appended (the file when one range is tracked, else a folder with one file per \
            range) and POWERCUT_IMAGE, POWERCUT_CUT, POWERCUT_EVENT set; --check-lib calls \
            `int NAME(const void *const images[], const size_t lengths[], size_t count)` in worker processes. \
            Exit status: 0 every checked image consistent, 1 some image inconsistent, 64 usage error, 65 a trace or \
            file that cannot give images, 70 internal error.
            """
    )

    @Argument(help: "The trace (text or binary).")
    var trace: String

    @Option(name: .customLong("check-cmd"), help: ArgumentHelp("Shell command run on each image (the image path is appended).", valueName: "cmd"))
    var checkCommand: String?

    @Option(name: .customLong("check-lib"), help: ArgumentHelp("Shared library holding the checker function.", valueName: "lib.so"))
    var checkLibrary: String?

    @Option(name: .customLong("check-fn"), help: ArgumentHelp("The checker function's name in --check-lib.", valueName: "name"))
    var checkFunction: String?

    @Option(help: ArgumentHelp("Content of a range before the trace, where no init record gives it (RANGE: its name or base address; repeatable).", valueName: "range=file"))
    var initial: [String] = []

    @Option(help: "Which cuts to check: fences (just before each event that guarantees a write, and the end), marks, ops or all.")
    var cuts: CutSelection = .fences

    @Option(help: "Enumerate every image of a cut when it has at most this many; above, the depth enumeration (or --random).")
    var maxImages: UInt64 = 100_000

    @Option(help: "Above --max-images: the images in which at most this many lines differ from their newest content.")
    var depth: Int = 2

    @Option(help: ArgumentHelp("Above --max-images: this many distinct images drawn at random instead.", valueName: "n"))
    var random: Int?

    @Option(help: "Seed of --random.")
    var seed: UInt64 = 0

    @Option(help: "Worker processes (default: the number of processors).")
    var jobs: Int?

    @Option(help: "Seconds one check may take before it is killed (an inconsistent image of its own kind).")
    var timeout: Double = 10

    @Option(help: ArgumentHelp("Save failing images in DIR (default: a new folder in TMPDIR).", valueName: "dir"))
    var saveImages: String?

    @Flag(help: "Report (and save) every failing image, not only the first.")
    var reportAll = false

    @Flag(help: "Print the exact number of distinct images per checked cut; run no checker.")
    var count = false

    @Flag(help: "List the images of each checked cut compactly; run no checker.")
    var list = false

    @Option(help: ArgumentHelp("Tell whether (and why) the image at PATH could be left by a power failure; run no checker.", valueName: "path"))
    var explainImage: String?

    @OptionGroup var model: ModelOptions

    @OptionGroup var symbols: SymbolOptions

    @Option(help: "Report format: text, json, sarif or junit.")
    var format: CrashFormat = .text

    func validate() throws {
        let checkers = (checkCommand != nil ? 1 : 0) + (checkLibrary != nil ? 1 : 0)
        if count && list { throw ValidationError("--count and --list cannot be combined") }
        if explainImage != nil && (count || list || checkers > 0) { throw ValidationError("--explain-image runs no checker and lists nothing") }
        if !count && !list && explainImage == nil && checkers != 1 {
            throw ValidationError("name one checker: --check-cmd 'CMD' or --check-lib LIB.so --check-fn NAME (or use --count / --list)")
        }
        if checkers > 1 { throw ValidationError("--check-cmd and --check-lib cannot be combined") }
        if (checkLibrary != nil) != (checkFunction != nil) { throw ValidationError("--check-lib and --check-fn go together") }
        if depth < 0 || depth > 64 { throw ValidationError("--depth must be between 0 and 64") }
        if let random, random <= 0 { throw ValidationError("--random must be at least 1") }
        if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be between 1 and 256") }
        if !(timeout > 0) { throw ValidationError("--timeout must be positive") }
        if maxImages < 1 { throw ValidationError("--max-images must be at least 1") }
        for spec in initial where !spec.contains("=") || spec.hasPrefix("=") || spec.hasSuffix("=") {
            throw ValidationError("--initial \(spec): expected RANGE=FILE")
        }
        if list && format != .text { throw ValidationError("--list prints text only") }
        if count && (format == .sarif || format == .junit) { throw ValidationError("--count prints text or json") }
    }

    func run() throws {
        try reporting {
            do {
                try crash()
            } catch let e as CrashError {
                throw Failure(message: e.message, status: e.exitStatus)
            }
        }
    }

    private func crash() throws {
        var options = CrashOptions()
        options.replay = model.replayOptions()
        options.selection = cuts
        options.plan = ImagePlan(maxImages: maxImages, depth: depth, random: random.map { ($0, seed) })
        options.initial = initial.map { spec in
            let i = spec.firstIndex(of: "=")!
            return (String(spec[..<i]), String(spec[spec.index(after: i)...]))
        }
        options.jobs = jobs ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        options.timeout = timeout
        options.saveDirectory = saveImages
        options.reportAll = reportAll
        let session = CrashSession(path: trace, options: options)

        if count {
            let (cuts, _) = try session.count()
            writeAll(1, format == .json ? CountReport().json(cuts) : CountReport().text(cuts))
            return
        }
        if list {
            try session.list { writeAll(1, $0) }
            return
        }
        if let explainImage {
            let explanation = try session.explain(imagePath: explainImage)
            writeAll(1, explanation.wording(image: explainImage))
            if explanation.cut == nil { throw ExitCode(ExitStatus.findings) }
            return
        }
        let checker: CheckerSpec = checkCommand.map { .command($0) } ?? .library(path: checkLibrary!, function: checkFunction!)
        let progress = ProgressLine()
        let outcome = try session.check(checker) { done, total in progress.update(done, total) }
        progress.finish()
        let frames = symbols.resolver()
        defer { symbols.finish(frames, notes: false) }
        let stacks = session.stacks, modules = session.modules
        let text = CrashTextReport(stackText: { id in
            stacks[id].map { frames.stackText(Array($0.prefix(12)), modules: modules, indent: "        ") } ?? ""
        }, rerun: checkCommand)
        switch format {
        case .text: writeAll(1, text.render(outcome) + "powercut: \(outcome.summary)\n")
        case .json: writeAll(1, CrashJSONReport().render(outcome))
        case .sarif: writeAll(1, CrashSARIFReport(toolVersion: PowercutVersion.string).render(outcome))
        case .junit: writeAll(1, CrashJUnitReport().render(outcome, text: text))
        }
        if outcome.failures > 0 { throw ExitCode(ExitStatus.findings) }
    }
}

/// Progress on standard error: a bar on a terminal, a line per 10 % otherwise.
final class ProgressLine {
    private let terminal = isatty(2) == 1
    private var lastTenth: Int64 = 0
    private var lastDraw = 0.0
    private var drawn = false

    func update(_ done: Int64, _ total: Int64) {
        guard total > 0 else { return }
        if terminal {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let now = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
            guard now - lastDraw >= 0.1 || done == total else { return }
            lastDraw = now
            let width = 30
            let filled = Int(Int64(width) * done / total)
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            writeAll(2, "\r[\(bar)] \(done * 100 / total)% \(done)/\(total) images")
            drawn = true
        } else {
            // One line per tenth passed, even when a step passes several.
            let tenth = done * 10 / total
            while lastTenth < tenth && total >= 1000 {
                lastTenth += 1
                writeAll(2, "powercut: checked \(lastTenth * 10)% (\(lastTenth == tenth ? done : total * lastTenth / 10) of \(total) images)\n")
            }
        }
    }

    func finish() {
        if drawn { writeAll(2, "\r\u{1b}[K") }
    }
}
