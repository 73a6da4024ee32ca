import ArgumentParser
import PowercutOutput
import PowercutTrace
import PowercutTriage
#if canImport(Glibc)
import Glibc
#endif

/// `powercut run [options] -- PROGRAM ARGS…`: runs a whole program under Valgrind with
/// powercut's tool (ValgrindTool/), which records every thread's stores, non-temporal
/// stores, write-backs and fences on persistent memory into a trace; then checks the
/// trace exactly as `check` does, with all of check's options. Docs/run.md.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a whole program under Valgrind and check what a power failure could lose.",
        usage: "powercut run [options] [check options] -- PROGRAM [ARGUMENT ...]",
        discussion: """
            Persistent memory is what the program declares through pmemcheck's client requests (libpmem, \
            libpmem2, libpmemobj: run them unmodified, e.g. with PMEM_IS_PMEM_FORCE=1), through powercut.h, \
            or every mapping of a --pmem-file. Every option of `powercut check` (--format, --baseline, \
            --suppressions, --domain, --error-exitcode, ...) may come before '--'; check's -o is --report here. \
            Exit status: 0 clean, 1 (or --error-exitcode) error findings, 2 the program exited non-zero, was \
            killed by a signal or cannot run under stock Valgrind (and no error finding), 64 usage, 65 bad \
            trace or input, 70 internal error (Valgrind or the tool failed).
            """
    )

    @Option(name: [.customShort("o"), .customLong("trace")], help: ArgumentHelp("Keep the trace in FILE (.pct text, otherwise binary).", valueName: "file"))
    var trace: String?

    @Option(help: ArgumentHelp("Every mapping of this file is persistent memory (repeatable).", valueName: "path"))
    var pmemFile: [String] = []

    @Option(help: ArgumentHelp("Every call of SYMBOL is an op: dst = 1st argument, len = 3rd; SYMBOL=persist|flushcache|none sets the contract, a :DST:LEN suffix other argument positions (1-6), e.g. my_copy=persist:2:4 (repeatable).", valueName: "spec"))
    var op: [String] = []

    @Option(help: ArgumentHelp("When a mapping of persistent memory is removed (munmap, REMOVE_PMEM_MAPPING, powercut_reset) and at program exit, report every byte stored there and not yet durable (yes|no, default yes).", valueName: "yes|no"))
    var checkAtRelease: String = "yes"

    @Option(help: ArgumentHelp("Write the report to FILE (check's -o).", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("The valgrind launcher to use.", valueName: "path"))
    var valgrind: String = "valgrind"

    @Option(help: ArgumentHelp("Pass an option to Valgrind itself, e.g. --valgrind-arg=--fair-sched=yes (repeatable).", valueName: "option"))
    var valgrindArg: [String] = []

    @OptionGroup(title: "Check options") var check: CheckOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program to record and its arguments, after '--'.", valueName: "program"))
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("name the program after '--', e.g. powercut run -- ./prog arg") }
        for spec in op where !ValgrindRun.isValidOpSpec(spec) {
            throw ValidationError("--op '\(spec)': expected SYMBOL[=flushcache|persist|none][:DST:LEN] with positions 1 to 6")
        }
        guard checkAtRelease == "yes" || checkAtRelease == "no" else {
            throw ValidationError("--check-at-release '\(checkAtRelease)': expected yes or no")
        }
        try requireName(report, "--report")
        try requireName(trace, "-o/--trace")
        try check.validate(report: report, reportOption: "--report")
    }

    func run() throws {
        let outcome: ValgrindRun.Outcome = try reporting {
            let runner = try ValgrindRun(valgrind: valgrind, pmemFiles: pmemFile, ops: op,
                                         checkAtRelease: checkAtRelease == "yes", valgrindArguments: valgrindArg)
            return try runner.record(command: command, keep: trace)
        }
        defer { outcome.cleanUp() }
        if let unsupported = outcome.unsupported {
            printError("cannot record \(command[0]) under stock Valgrind: \(unsupported)")
            throw ExitCode(ValgrindRun.programFailed)
        }
        for line in outcome.notes { printError(line) }
        var status: Int32 = 0
        do {
            try reportingCheck {
                try check.check(files: [outcome.tracePath], report: report)
            }
        } catch let e as ExitCode {
            status = e.rawValue
        }
        if let problem = outcome.programProblem {
            printError(problem)
            if status == 0 { status = ValgrindRun.programFailed }
        }
        if let kept = trace { printError("trace kept in \(kept)") }
        if status != 0 { throw ExitCode(status) }
    }
}

/// One run of a program under Valgrind with powercut's tool.
struct ValgrindRun {
    /// The exit status of `run` when the program itself failed (and nothing worse).
    static let programFailed: Int32 = 2

    let launcher: String
    let toolFolder: String
    let pmemFiles: [String]
    let ops: [String]
    /// Assert every non-volatile range durable when it is released and at exit.
    let checkAtRelease: Bool
    let valgrindArguments: [String]

    struct Outcome {
        var tracePath: String
        var scratch: String
        /// What the tool said the user must know, one line each.
        var notes: [String]
        /// The instruction stock Valgrind cannot run, and where.
        var unsupported: String?
        /// How the program ended, when not with status 0.
        var programProblem: String?

        func cleanUp() { removeTree(scratch) }
    }

    static func isValidOpSpec(_ spec: String) -> Bool {
        var s = Substring(spec)
        if let colon = s.firstIndex(of: ":") {
            let positions = s[s.index(after: colon)...].split(separator: ":", omittingEmptySubsequences: false)
            guard positions.count == 2, positions.allSatisfy({ Int($0).map { (1...6).contains($0) } ?? false }) else { return false }
            s = s[..<colon]
        }
        if let eq = s.firstIndex(of: "=") {
            guard Contract(name: String(s[s.index(after: eq)...])) != nil else { return false }
            s = s[..<eq]
        }
        return !s.isEmpty && !s.contains(where: { $0 == " " || $0 == "\t" })
    }

    init(valgrind: String, pmemFiles: [String], ops: [String], checkAtRelease: Bool = true,
         valgrindArguments: [String]) throws {
        launcher = valgrind
        toolFolder = try Self.findToolFolder(launcher: valgrind)
        self.pmemFiles = pmemFiles.map(absolutePath)
        self.ops = ops
        self.checkAtRelease = checkAtRelease
        self.valgrindArguments = valgrindArguments
    }

    /// The private VALGRIND_LIB folder with the tool: $POWERCUT_VALGRIND_LIB, or
    /// ValgrindTool/build/lib of the source tree this powercut was built from (built
    /// here with make when missing or built for another Valgrind version), or
    /// lib/powercut/valgrind beside an installed binary.
    static func findToolFolder(launcher: String) throws -> String {
        let tool = "powercut-amd64-linux"
        if let env = getenv("POWERCUT_VALGRIND_LIB").map({ String(cString: $0) }), !env.isEmpty {
            guard access(env + "/" + tool, X_OK) == 0 else {
                throw Failure.usage("POWERCUT_VALGRIND_LIB=\(env) has no \(tool) (build it with make -C ValgrindTool)")
            }
            return env
        }
        var dir = executableDirectory()
        var installed: String?
        let beside = dir + "/../lib/powercut/valgrind"
        if access(beside + "/" + tool, X_OK) == 0 { installed = beside }
        while !dir.isEmpty && dir != "/" {
            let makefile = dir + "/ValgrindTool/Makefile"
            if access(makefile, R_OK) == 0 {
                try build(toolDirectory: dir + "/ValgrindTool", launcher: launcher)
                return dir + "/ValgrindTool/build/lib"
            }
            dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)])
        }
        if let installed { return installed }
        throw Failure.usage("cannot find powercut's Valgrind tool (\(tool)): build it with make -C ValgrindTool, or set POWERCUT_VALGRIND_LIB")
    }

    /// `make -C ValgrindTool` (a no-op when up to date); its output only on failure.
    static func build(toolDirectory: String, launcher: String) throws {
        let log = toolDirectory + "/build/make.log"
        _ = mkdir(toolDirectory + "/build", 0o755)
        let status = try spawnAndWait(["make", "-s", "-C", toolDirectory, "VALGRIND=\(launcher)"], environment: [:],
                                      stdoutPath: log, stderrPath: log)
        if status.exitCode != 0 {
            let text = (try? readFile(log)).map { String(decoding: $0.suffix(2000), as: UTF8.self) } ?? ""
            throw Failure.internal("building the Valgrind tool failed (make -C \(toolDirectory)):\n\(text)")
        }
    }

    /// Runs the program and assembles its trace; the trace goes to `keep` or into a
    /// scratch folder.
    func record(command: [String], keep: String?) throws -> Outcome {
        let base = keep.map { dirName(absolutePath($0)) } ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        var template = Array((base + "/powercut-run.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw Failure.usage("cannot create a scratch folder in \(base): \(String(cString: strerror(errno)))")
        }
        let scratch = String(cString: made)
        let program = command[0].split(separator: "/").last.map(String.init) ?? "program"
        var outcome = Outcome(tracePath: scratch + "/\(program).pctb", scratch: scratch, notes: [])
        do {
            try runValgrind(command: command, scratch: scratch, outcome: &outcome)
            try assemble(scratch: scratch, to: keep, outcome: &outcome)
        } catch {
            outcome.cleanUp()
            throw error
        }
        return outcome
    }

    private func runValgrind(command: [String], scratch: String, outcome: inout Outcome) throws {
        var argv = [launcher, "--tool=powercut", "--log-file=\(scratch)/valgrind.log",
                    "--events=\(scratch)/events", "--head=\(scratch)/head", "--notes=\(scratch)/notes"]
        argv += pmemFiles.map { "--pmem-file=\($0)" }
        argv += ops.map { "--op=\($0)" }
        argv += ["--check-at-release=\(checkAtRelease ? "yes" : "no")"]
        argv += valgrindArguments
        // A program started through a wrapper (a script, a shim that execs the real
        // binary) is recorded after the exec; the tool names its files by process ID.
        argv += ["--trace-children=yes"]
        argv += command
        var pid: pid_t = 0
        let status = try spawnAndWait(argv, environment: ["VALGRIND_LIB": toolFolder], stdoutPath: nil, stderrPath: nil,
                                      pid: &pid)
        for name in ["events", "head", "notes"] { rename(scratch + "/\(name).\(pid)", scratch + "/" + name) }

        let notes = (try? readFile(scratch + "/notes")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        for line in notes.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            let level = line[..<space], text = String(line[line.index(after: space)...])
            switch level {
            case "unsupported": if outcome.unsupported == nil { outcome.unsupported = text }
            case "error": outcome.notes.append("error while recording: " + text)
            case "info": continue
            default: outcome.notes.append("warning: " + text)
            }
        }
        if outcome.unsupported != nil { return }
        guard access(scratch + "/head", R_OK) == 0, access(scratch + "/events", R_OK) == 0 else {
            // Valgrind or the tool did not get to the end: say what its log says.
            let log = (try? readFile(scratch + "/valgrind.log")).map { String(decoding: $0.suffix(3000), as: UTF8.self) } ?? ""
            let how = status.signal != 0 ? "was killed by \(signalName(status.signal))" : "exited with status \(status.exitCode)"
            throw Failure.internal("valgrind \(how) before the trace was written; its log ends:\n\(log)")
        }
        if status.signal != 0 {
            outcome.programProblem = "the program was killed by \(signalName(status.signal)) (the trace covers what ran until then)"
        } else if status.exitCode != 0 {
            outcome.programProblem = "the program exited with status \(status.exitCode)"
        }
    }

    /// The trace is the tool's header file followed by its events file.
    private func assemble(scratch: String, to keep: String?, outcome: inout Outcome) throws {
        let binaryPath = keep.flatMap { $0.hasSuffix(".pct") ? nil : $0 } ?? outcome.tracePath
        let out = try OutputFile(path: binaryPath)
        try out.write(try readFile(scratch + "/head"))
        try copyFile(scratch + "/events", into: out)
        try out.commit()
        if let keep, keep.hasSuffix(".pct") {
            try convertTrace(from: binaryPath, to: keep, form: .text)
            outcome.tracePath = keep
        } else {
            outcome.tracePath = binaryPath
        }
    }
}

// MARK: - processes and files

struct ProcessStatus {
    var exitCode: Int32
    var signal: Int32
}

/// Runs argv[0] (looked up in PATH) with its output on ours or in files, and waits.
func spawnAndWait(_ argv: [String], environment: [String: String], stdoutPath: String?, stderrPath: String?) throws -> ProcessStatus {
    var pid: pid_t = 0
    return try spawnAndWait(argv, environment: environment, stdoutPath: stdoutPath, stderrPath: stderrPath, pid: &pid)
}

/// The same, telling the child's process ID.
func spawnAndWait(_ argv: [String], environment: [String: String], stdoutPath: String?, stderrPath: String?,
                  pid: inout pid_t) throws -> ProcessStatus {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdoutPath { posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    if let stderrPath {
        if stderrPath == stdoutPath { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
        else { posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
    }
    var env: [String] = []
    var i = 0
    while let p = environ[i] {
        let entry = String(cString: p)
        let key = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
        if environment[key] == nil { env.append(entry) }
        i += 1
    }
    for (k, v) in environment { env.append("\(k)=\(v)") }
    var cArgs = argv.map { strdup($0) } + [nil]
    var cEnv = env.map { strdup($0) } + [nil]
    defer {
        for p in cArgs { free(p) }
        for p in cEnv { free(p) }
    }
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, &cEnv)
    if rc != 0 {
        throw Failure.usage("cannot run \(argv[0]): \(String(cString: strerror(rc)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { throw Failure.internal("waitpid failed: \(String(cString: strerror(errno)))") }
    }
    let signal = status & 0x7f
    if signal != 0 { return ProcessStatus(exitCode: 128 + signal, signal: signal) }
    return ProcessStatus(exitCode: (status >> 8) & 0xff, signal: 0)
}

func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGABRT: "SIGABRT",
                                  SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGFPE: "SIGFPE", SIGINT: "SIGINT"]
    return "signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
}

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure.internal("cannot read \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw Failure.internal("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { return out }
        out.append(contentsOf: chunk[0..<n])
    }
}

/// Streams a file into an output file, 1 MiB at a time.
func copyFile(_ path: String, into out: OutputFile) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure.internal("cannot read \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw Failure.internal("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { return }
        try out.write(chunk[0..<n])
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return path }
    return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
}

func dirName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
    guard n > 0 else { return "." }
    return dirName(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
}

/// Removes a scratch folder this run made (files only one level deep).
func removeTree(_ path: String) {
    guard let d = opendir(path) else { return }
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name == "." || name == ".." { continue }
        unlink(path + "/" + name)
    }
    closedir(d)
    rmdir(path)
}
