import ArgumentParser
import Foundation
import PowercutKernelLift
import PowercutModel
import PowercutRecorder
import PowercutReport
import PowercutSweep
import PowercutSymbolize
import PowercutTrace
import PowercutTriage

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify copy routines over every destination alignment and size.",
        discussion: """
            Records and replays one call per (dst offset, src offset, size) in worker processes, \
            so a routine that crashes or loops costs one case. With no routine named, sweeps every \
            built-in subject. Environment variables (PMEM_NO_CLWB, PMEM_NO_FLUSH, …) pass through \
            to the routine. For CI, --format sarif, junit or github gives one result per failing \
            pattern (its first case, replayed from the trace --save-failing kept), and --baseline FILE \
            fails only on findings whose fingerprint FILE does not list (a fingerprint leaves out sizes \
            and offsets: the same bug at another size is the same finding). Exit status: 0 every case \
            clean (or known from the baseline), 1 (or --error-exitcode) failing cases, 64 usage, \
            65 a malformed baseline, 70 internal.
            """
    )

    @Argument(help: "Built-in subjects (default: all of them).")
    var subjects: [String] = []

    @OptionGroup var routine: RoutineOptions

    @Option(help: "Lift this Linux tree's flushcache code (see kernel-lift) and sweep it.")
    var kernelTree: String?

    @Option(name: .customLong("patch"), help: "With --kernel-tree: a patch to apply to the lifted copy (patch -p1; repeatable).")
    var patches: [String] = []

    @Option(help: "With --kernel-tree: the instruction the tree's clwb() executes (clwb, clflushopt, clflush).")
    var flush: FlushInstruction?

    @Option(help: "Destination offsets from a 4 KiB boundary: ranges and lists, e.g. 0-63 or 0,1,8-15.")
    var dstOffsets = SweepGrid.defaultDstOffsets

    @Option(help: "Source offsets.")
    var srcOffsets = SweepGrid.defaultSrcOffsets

    @Option(help: "Sizes in bytes.")
    var sizes = SweepGrid.defaultSizes

    @Option(help: "The routine's contract: flushcache, persist or none.")
    var contract: Contract = .flushcache

    @Option(help: "The caller's drain after each call: sfence (recorded) or none.")
    var drain: DrainArgument = .sfence

    @OptionGroup var model: ModelOptions

    @Option(help: "Worker processes (default: one per core).")
    var jobs: Int?

    @Option(help: "Instructions allowed per case before it is abandoned.")
    var budget: UInt64 = 2_000_000

    @Option(help: "Seconds allowed per case before its worker is killed.")
    var timeout: Double = 30

    @Option(help: "Report format: text, json, sarif (SARIF 2.1.0), junit (JUnit XML) or github (workflow annotations); the last three need --save-failing.")
    var format: SweepFormat = .text

    @Option(help: ArgumentHelp("Known findings: only failing patterns with a finding whose fingerprint is not in FILE fail the run (needs --save-failing).", valueName: "file"))
    var baseline: String?

    @Option(help: ArgumentHelp("Write the fingerprints of the failing patterns' findings to FILE, crash-safely (needs --save-failing).", valueName: "file"))
    var writeBaseline: String?

    @Option(help: ArgumentHelp("SARIF and GitHub paths are relative to DIR (default: the current directory).", valueName: "dir"))
    var sourceRoot: String?

    @OptionGroup var symbols: SymbolOptions

    @Option(help: "Write a heatmap of bytes at risk (dst offset × size) to this .svg (or .png) file.")
    var heatmap: String?

    @Option(help: "Write each failing case's trace into this directory.")
    var saveFailing: String?

    @Option(help: "Exit status when some case fails.")
    var errorExitcode: Int32 = ExitStatus.findings

    @Option(name: [.short, .customLong("output")], help: "Write the report to this file (crash-safely).")
    var output: String?

    @Flag(help: "No progress display.")
    var quiet = false

    enum SweepFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json, sarif, junit, github
        /// Printed from the replayed traces of each pattern's first case.
        var needsTraces: Bool { self == .sarif || self == .junit || self == .github }
    }

    /// Whether the first case of each pattern is replayed from its saved trace.
    private var replaysPatterns: Bool { format.needsTraces || baseline != nil || writeBaseline != nil }

    func grid() throws -> SweepGrid {
        do {
            return SweepGrid(dstOffsets: try SweepGrid.parseList(dstOffsets, max: 4095),
                             srcOffsets: try SweepGrid.parseList(srcOffsets, max: 4095),
                             sizes: try SweepGrid.parseList(sizes, max: 1 << 24))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        _ = try grid()
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let problem = TimeLimit.problem(timeout) { throw ValidationError(problem) }
        // Every output's folder is checked before the sweep runs, not after.
        for (option, path) in [("--heatmap", heatmap), ("--output", output)] {
            guard let path, path != "-" else { continue }
            if path.isEmpty { throw ValidationError("\(option) needs a file name") }
            if let problem = folderProblem(of: path) { throw ValidationError("\(option) \(path): \(problem)") }
        }
        if let heatmap, !heatmap.hasSuffix(".svg") && !heatmap.hasSuffix(".png") {
            throw ValidationError("--heatmap \(heatmap): the name must end in .svg or .png")
        }
        if let heatmap, heatmap.hasSuffix(".png"), !commandExists("rsvg-convert") {
            throw ValidationError("--heatmap \(heatmap): a .png needs rsvg-convert (install librsvg2-bin, or ask for an .svg)")
        }
        if let saveFailing, saveFailing.isEmpty { throw ValidationError("--save-failing needs a folder name") }
        for (option, path) in [("--baseline", baseline), ("--write-baseline", writeBaseline), ("--source-root", sourceRoot)] {
            if path?.isEmpty == true { throw ValidationError("\(option) needs a file name") }
        }
        if let writeBaseline, let problem = folderProblem(of: writeBaseline) {
            throw ValidationError("--write-baseline \(writeBaseline): \(problem)")
        }
        if replaysPatterns && saveFailing == nil {
            let what = format.needsTraces ? "--format \(format.rawValue)" : baseline != nil ? "--baseline" : "--write-baseline"
            throw ValidationError("\(what) needs --save-failing DIR: each failing pattern is reported from its first case's trace, kept there")
        }
        if !(1...255).contains(errorExitcode) {
            throw ValidationError("--error-exitcode \(errorExitcode) is out of range (expected 1 to 255)")
        }
    }

    /// Why a file cannot be created at `path` (its folder is missing or not writable), or nil.
    private func folderProblem(of path: String) -> String? {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) else { return "the folder \(dir) does not exist" }
        guard isDirectory.boolValue else { return "\(dir) is not a folder" }
        guard access(dir, W_OK) == 0 else { return "the folder \(dir) is not writable" }
        return nil
    }

    private func commandExists(_ name: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
            access("\($0)/\(name)", X_OK) == 0
        }
    }

    func run() throws {
        try reporting {
            do {
                try sweep()
            } catch let e as ConfigFileError {
                throw Failure.badData(e.description)
            }
        }
    }

    private func sweep() throws {
        // The configuration first: a bad baseline fails before any work.
        let known = try baseline.map(Baseline.load)
        let grid = try grid()
        if kernelTree != nil && (!subjects.isEmpty || routine.lib != nil) {
            throw ValidationError("--kernel-tree sweeps the tree's routines: name no subjects and no --lib")
        }
        let lifted = try kernelTree.map { try liftKernelForSweep(tree: $0, patches: patches, flush: flush) }
        let cleanup = lifted.map { SignalCleanup(removing: $0.directory) }
        defer {
            cleanup?.cancel()
            if let lifted { try? FileManager.default.removeItem(atPath: lifted.directory) }
        }
        let routines = try lifted.map { k in k.sweptRoutines.map { Routine.library(path: k.library, symbol: $0.symbol) } }
            ?? (routine.routines(subjects).isEmpty ? Routine.subjects.map { Routine.subject($0.name) }
                                                   : routine.routines(subjects))
        // Resolve every routine here first: a bad name or library is a usage error,
        // not thousands of failing cases. A library is loaded in a child: its
        // constructors may crash or end the process.
        for r in routines { try probe(r) }
        if let dir = saveFailing {
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let report = SweepReport(grid: grid) { name in
            lifted?.routines.first { $0.symbol == name }.map { "\($0.treeFunction) of \(lifted!.tree), lifted" }
                ?? Routine.subjects.first { $0.name == name }?.summary
        }
        if let lifted { writeAll(format == .text && output == nil ? 1 : 2, lifted.report + "\n") }
        let progress = Progress(enabled: !quiet)
        if format == .text && output == nil { writeAll(1, report.header(routines: routines.count, domain: domainName, drain: drain.rawValue)) }
        var results: [RoutineResult] = []
        let started = Date()
        for r in routines {
            // The workers keep the time limit themselves (a typed `timeout` result);
            // the pool's kill is the backstop for a worker that cannot.
            let pool = WorkerPool(executable: selfPath(), arguments: workerArguments(for: r), jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount,
                                  caseTimeout: timeout + 10)
            let cases = try pool.run(grid.cases) { done, total in progress.update(r.description, done, total) }
            progress.finish(r.description, cases)
            if !quiet { reportUnfinished(r, cases) }
            results.append(RoutineResult(routine: r.description, contract: contract.description, domain: domainName, cases: cases))
        }
        let seconds = Date().timeIntervalSince(started)
        var triage: Triage?
        if replaysPatterns, let dir = saveFailing {
            triage = try patternTriage(results, dir: dir, baseline: known)
        }
        defer { if let triage { symbols.finish(triage.frames, notes: false) } }
        var text: String
        switch format {
        case .json: text = report.json(results, domain: domainName, drain: drain.rawValue)
        case .text:
            text = output == nil ? "" : report.header(routines: routines.count, domain: domainName, drain: drain.rawValue)
            text += report.render(results)
            if let triage, known != nil {
                text += "powercut sweep: baseline \(baseline!): \(triage.knownCount) finding\(triage.knownCount == 1 ? "" : "s") known, "
                    + "\(triage.reportedErrors) new error finding\(triage.reportedErrors == 1 ? "" : "s")\n"
            }
            text += timing(results, seconds: seconds)
        case .sarif:
            text = SARIFReport(toolVersion: PowercutVersion.string, sourceRoot: root).render(triage!)
        case .junit:
            text = JUnitReport(frames: triage!.frames).render(triage!)
        case .github:
            let shown = Summary(triage!.reportedTraces)
            text = GitHubReport(sourceRoot: root).render(triage!)
                + "powercut sweep: \(results.reduce(0) { $0 + $1.failing.count }) failing cases in "
                + "\(triage!.traces.count) pattern\(triage!.traces.count == 1 ? "" : "s"); first cases: \(shown.line)"
                + triage!.countsNote(baseline: known != nil, suppressions: false) + "\n"
        }
        if let heatmap { try writeHeatmap(Heatmap(grid: grid).svg(results), to: heatmap) }
        // The baseline before the report: if it cannot be written, nothing claims success.
        if let writeBaseline, let triage { try writeOutput(triage.baselineText, to: writeBaseline) }
        try emit(text, to: output)
        // Cases without a trace (crashed, out of budget or time, refused) always fail.
        let unfinished = results.contains { $0.failing.contains { $0.status != .failing } }
        if let triage, known != nil {
            if triage.reportedErrors > 0 || unfinished { throw ExitCode(errorExitcode) }
        } else if results.contains(where: { !$0.isClean }) {
            throw ExitCode(errorExitcode)
        }
    }

    private var root: SourceRoot { sourceRoot.map(SourceRoot.init) ?? .current }

    /// The first case of every failing pattern, replayed from the trace its worker saved
    /// in `dir`, with its findings' fingerprints checked against the baseline.
    private func patternTriage(_ results: [RoutineResult], dir: String, baseline: Baseline?) throws -> Triage {
        var options = model.replayOptions()
        options.keepOps = format == .junit
        var checked: [CheckedTrace] = []
        for r in results {
            for c in r.firstCases where c.status == .failing {
                let path = CaseRunner.savedTracePath(dir: dir, routine: r.routine, case: c.sweepCase)
                do {
                    let (result, reader) = try Replayer.replay(file: path, options: options)
                    checked.append(CheckedTrace(file: path, form: reader.form, header: reader.header,
                                                stacks: reader.stacks, result: result))
                } catch {
                    throw Failure.internal("cannot replay the saved trace of \(r.routine) \(c.sweepCase.label): \(error)")
                }
            }
        }
        let frames = symbols.resolver()
        frames.prefetch(checked)
        var triage = Triage(checked, baseline: baseline, frames: frames)
        if format == .sarif || format == .github { triage.locateEvents() }
        return triage
    }

    private var domainName: String { (model.domain ?? .adr).description }

    /// Loads a library routine in a child (its constructors run there) and resolves the symbol.
    private func probe(_ r: Routine) throws {
        guard case .library(let path, let symbol) = r else {
            _ = try r.resolve()
            return
        }
        let child: IsolatedRun
        do {
            child = try IsolatedRun.run(executable: selfPath(), arguments: [
                "record", "--isolated-child", "--probe", "--lib", path, "--symbol", symbol, "--len", "0", "-o", "-",
            ], timeout: max(timeout, 30))  // a process start and a load, not a case: --timeout may be short
        } catch {
            throw Failure.internal("\(error)")
        }
        guard let failure = child.failure(r) else { return }
        switch failure.reason {
        case .recorder(.routine, _), .recorder(.usage, _): throw Failure.usage(failure.description)
        default: throw Failure.badData("cannot sweep \(symbol): \(failure.description)")
        }
    }

    /// One line per case that crashed or ran out of time (at most 20 per routine).
    private func reportUnfinished(_ r: Routine, _ cases: [CaseResult]) {
        let unfinished = cases.filter { $0.status == .crashed || $0.status == .timeout }
        for c in unfinished.prefix(20) {
            printError("sweep: \(r) \(c.sweepCase.label): \(c.status.rawValue): \(c.message ?? "")")
        }
        if unfinished.count > 20 {
            printError("sweep: \(r): \(unfinished.count - 20) more cases crashed or timed out (the report lists them all)")
        }
    }

    private func workerArguments(for r: Routine) -> [String] {
        var a = ["sweep-worker", "--dst-offsets", dstOffsets, "--src-offsets", srcOffsets, "--sizes", sizes,
                 "--contract", contract.description, "--drain", drain.rawValue, "--budget", String(budget),
                 "--timeout", String(timeout)]
        switch r {
        case .subject(let name): a.append(name)
        case .library(let path, let symbol): a += ["--lib", path, "--symbol", symbol]
        }
        if let d = model.domain { a += ["--domain", d.description] }
        if model.ntEvicts { a.append("--nt-evicts") }
        if model.strictClflush { a.append("--strict-clflush") }
        if let s = saveFailing { a += ["--save-failing", s] }
        return a
    }

    private func timing(_ results: [RoutineResult], seconds: Double) -> String {
        let cases = results.reduce(0) { $0 + $1.cases.count }
        let record = results.reduce(0.0) { $0 + $1.cases.reduce(0.0) { $0 + $1.recordSeconds } }
        let replay = results.reduce(0.0) { $0 + $1.cases.reduce(0.0) { $0 + $1.replaySeconds } }
        let steps = results.reduce(UInt64(0)) { $0 + $1.cases.reduce(UInt64(0)) { $0 + $1.instructions } }
        return String(format: "powercut sweep: %.1f s wall, %.0f cases/s; in the workers: %.1f s recording (%llu instructions seen), %.1f s replaying\n",
                      seconds, Double(cases) / max(seconds, 1e-9), record, steps, replay)
    }

    private func writeHeatmap(_ svg: String, to path: String) throws {
        if path.hasSuffix(".png") {
            let tmp = path + ".svg.incomplete"
            try OutputFile.write(svg, to: tmp)
            defer { try? FileManager.default.removeItem(atPath: tmp) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["rsvg-convert", "-o", path + ".incomplete", tmp]
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else {
                throw Failure.internal("rsvg-convert could not render \(path) (install librsvg2-bin, or ask for an .svg)")
            }
            _ = rename(path + ".incomplete", path)
        } else {
            try OutputFile.write(svg, to: path)
        }
    }
}

/// The path of this executable, for starting workers.
func selfPath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// A progress bar on a terminal; plain lines every 10% otherwise (CI logs).
final class Progress {
    let enabled: Bool
    let terminal = isatty(2) != 0
    var lastTenth = -1
    var lastDraw = 0.0

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ name: String, _ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        if terminal {
            let now = Date().timeIntervalSince1970
            if now - lastDraw < 0.1 && done < total { return }
            lastDraw = now
            let width = 30, filled = done * width / total
            writeAll(2, "\r  \(name) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total)")
        } else {
            let tenth = done * 10 / total
            if tenth != lastTenth {
                lastTenth = tenth
                writeAll(2, "powercut sweep: \(name): \(done)/\(total) cases (\(tenth * 10)%)\n")
            }
        }
    }

    func finish(_ name: String, _ cases: [CaseResult]) {
        lastTenth = -1
        guard enabled, terminal else { return }
        writeAll(2, "\r\u{1B}[K")
    }
}

struct SweepWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-worker",
        abstract: "(internal) Run sweep cases read from standard input.",
        shouldDisplay: false
    )

    @Argument var subjects: [String] = []
    @OptionGroup var routine: RoutineOptions
    @Option var dstOffsets = SweepGrid.defaultDstOffsets
    @Option var srcOffsets = SweepGrid.defaultSrcOffsets
    @Option var sizes = SweepGrid.defaultSizes
    @Option var contract: Contract = .flushcache
    @Option var drain: DrainArgument = .sfence
    @OptionGroup var model: ModelOptions
    @Option var budget: UInt64 = 2_000_000
    @Option var timeout: Double = 30
    @Option var saveFailing: String?

    func run() throws {
        // A crash is the kernel's to report (the parent names the signal): no handler,
        // no backtrace. What the routine prints goes to standard error; results go to
        // the pool on a descriptor of their own.
        restoreCrashSignals()
        let results = dup(1)
        dup2(2, 1)
        try reporting {
            let grid = SweepGrid(dstOffsets: try SweepGrid.parseList(dstOffsets, max: 4095),
                                 srcOffsets: try SweepGrid.parseList(srcOffsets, max: 4095),
                                 sizes: try SweepGrid.parseList(sizes, max: 1 << 24))
            guard let r = try routine.routines(subjects).first else { throw ValidationError("no routine") }
            var options = Harness.Options()
            options.contract = contract
            options.drain = drain == .sfence
            options.budget = budget
            let runner = try CaseRunner(routine: r, grid: grid, options: options,
                                        replay: model.replayOptions(), saveFailing: saveFailing)
            let encoder = JSONEncoder()
            let watchdog = CaseWatchdog(limit: timeout, descriptor: results)
            let limit = timeout == timeout.rounded() ? String(Int(timeout)) : String(timeout)
            while let line = readLine() {
                let f = line.split(separator: " ").compactMap { UInt64($0) }
                guard f.count == 3 else { continue }
                let c = SweepCase(dstOffset: f[0], srcOffset: f[1], size: f[2])
                let late = CaseResult(case: c, status: .timeout, message: "ran longer than the time limit of \(limit) s (--timeout)")
                watchdog.arm(Array(try encoder.encode(late)) + [0x0A])
                let result = runner.run(c)
                watchdog.disarm()
                writeAll(results, String(decoding: try encoder.encode(result), as: UTF8.self) + "\n")
                // After an abandoned call the routine's state is unknown: start afresh.
                if result.status == .budget || result.status == .error { return }
            }
        }
    }
}
