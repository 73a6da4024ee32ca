import Glibc

/// What a checker said about one image.
public enum CheckVerdict: Sendable, Equatable {
    case consistent
    /// Exit status or return value 125: the checker cannot tell.
    case skipped
    /// Any other status or return value.
    case inconsistent(Int32)
    /// The checker (or the worker calling it) died of a signal.
    case crashed(Int32)
    /// It ran past the time limit and was killed.
    case timedOut(Double)

    var code: UInt8 {
        switch self {
        case .consistent: 0
        case .skipped: 1
        case .inconsistent: 2
        case .crashed: 3
        case .timedOut: 4
        }
    }

    var value: Int32 {
        switch self {
        case .inconsistent(let v), .crashed(let v): v
        case .timedOut(let s): Int32(s)
        default: 0
        }
    }

    init(code: UInt8, value: Int32) {
        switch code {
        case 0: self = .consistent
        case 1: self = .skipped
        case 2: self = .inconsistent(value)
        case 3: self = .crashed(value)
        default: self = .timedOut(Double(value))
        }
    }

    /// Counts as an inconsistent image (crashes and timeouts included).
    public var isFailure: Bool {
        switch self {
        case .inconsistent, .crashed, .timedOut: true
        default: false
        }
    }

    /// `exited with status 1`, `crashed: signal 11 (Segmentation fault)`, …
    public var wording: String {
        switch self {
        case .consistent: "consistent"
        case .skipped: "skipped (status 125: cannot tell)"
        case .inconsistent(let s): "inconsistent (status \(s))"
        case .crashed(let sig): "crashed: signal \(sig) (\(String(cString: strsignal(sig))))"
        case .timedOut(let s): "timed out after \(ImageCount.oneDecimal(s)) s (killed)"
        }
    }

    public var keyword: String {
        switch self {
        case .consistent: "consistent"
        case .skipped: "skipped"
        case .inconsistent: "inconsistent"
        case .crashed: "crashed"
        case .timedOut: "timed-out"
        }
    }
}

/// The user's recovery checker.
public enum CheckerSpec: Sendable {
    /// A shell command; the image's path is appended as its last argument.
    case command(String)
    /// `int NAME(const void *const images[], const size_t lengths[], size_t count)` in a shared library.
    case library(path: String, function: String)
}

/// The C signature of a library checker.
typealias CheckFunction = @convention(c) (UnsafePointer<UnsafeRawPointer?>?, UnsafePointer<Int>?, Int) -> Int32

/// A loaded library checker.
final class LoadedFunction: @unchecked Sendable {
    let function: CheckFunction

    init(path: String, name: String) throws(CrashError) {
        // A bare name would be searched for in the library path; a path is what the user means.
        let file = path.contains("/") ? path : "./" + path
        guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            throw CrashError(.usage, "--check-lib \(quoted(path)): cannot load: \(String(cString: dlerror()))")
        }
        guard let symbol = dlsym(handle, name) else {
            throw CrashError(.usage, "--check-fn \(quoted(name)): no such function in \(path)")
        }
        function = unsafeBitCast(symbol, to: CheckFunction.self)
    }
}

/// Output kept of a checker: at most this many bytes and lines.
let keptOutputBytes = 4096
let keptOutputLines = 20

/// Keeps the first lines of a checker's output and drops the rest (counting it).
struct OutputKeeper {
    var kept: [UInt8] = []
    var lines = 0
    var dropped = 0

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes {
            if kept.count < keptOutputBytes && lines < keptOutputLines {
                kept.append(b)
                if b == 0x0A { lines += 1 }
            } else {
                dropped += 1
            }
        }
    }

    var text: String {
        var s = String(decoding: kept, as: UTF8.self)
        if dropped > 0 { s += (s.hasSuffix("\n") || s.isEmpty ? "" : "\n") + "[\(dropped) more bytes of output not kept]\n" }
        return s
    }
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs a shell command on one image file or folder, with a time limit; its output
/// (standard output and error) is read as it comes and mostly dropped.
struct CommandRunner {
    let command: String
    let timeout: Double
    /// The command's words when it has no shell syntax at all: it is then run the way
    /// the shell would run it (a PATH lookup and an exec), without a shell per image.
    let direct: [String]?

    init(command: String, timeout: Double) {
        self.command = command
        self.timeout = timeout
        direct = Self.plainWords(command)
    }

    /// Builtins the shell runs itself, which no program on PATH may stand in for.
    static let builtins: Set<String> = [
        ".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval", "exec", "exit", "export", "fc", "fg",
        "getopts", "hash", "jobs", "local", "read", "readonly", "return", "set", "shift", "source", "times", "trap",
        "type", "ulimit", "umask", "unalias", "unset", "wait",
    ]

    static func plainWords(_ command: String) -> [String]? {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.,:+@%- ".unicodeScalars)
        guard command.unicodeScalars.allSatisfy({ safe.contains($0) }) else { return nil }
        var words = command.split(separator: " ").map(String.init)
        guard let first = words.first, !builtins.contains(first) else { return nil }
        if !first.contains("/") {
            guard let path = getenv("PATH").map({ String(cString: $0) }) else { return nil }
            guard let dir = path.split(separator: ":", omittingEmptySubsequences: false).first(where: {
                access(($0.isEmpty ? "." : String($0)) + "/" + first, X_OK) == 0
            }) else { return nil }
            words[0] = (dir.isEmpty ? "." : String(dir)) + "/" + first
        }
        var st = stat()
        guard stat(words[0], &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(words[0], X_OK) == 0 else { return nil }
        return words
    }

    func shellQuoted(_ s: String) -> String {
        var out = "'"
        for c in s { out += c == "'" ? "'\\''" : String(c) }
        return out + "'"
    }

    func run(imagePath: String, cut: UInt64, event: String) -> (CheckVerdict, String) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return (.crashed(0), "cannot create a pipe: \(errnoText())") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attr, 0)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)

        let argv = direct.map { $0 + [imagePath] } ?? ["/bin/sh", "-c", command + " " + shellQuoted(imagePath)]
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if !s.hasPrefix("POWERCUT_IMAGE=") && !s.hasPrefix("POWERCUT_CUT=") && !s.hasPrefix("POWERCUT_EVENT=") { env.append(s) }
            e += 1
        }
        env += ["POWERCUT_IMAGE=" + imagePath, "POWERCUT_CUT=\(cut)", "POWERCUT_EVENT=" + event]
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, &cArgs, &cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return (.crashed(0), "cannot start \(argv[0]): \(String(cString: strerror(rc)))")
        }
        var keeper = OutputKeeper()
        let deadline = monotonicNow() + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        while true {
            let left = deadline - monotonicNow()
            if left <= 0 {
                timedOut = true
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                break
            }
            var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(min(left * 1000 + 1, 1000)))
            if r < 0 && errno != EINTR { break }
            if r <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer.withUnsafeBytes { keeper.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Whatever the command left running in its group goes too.
        kill(-pid, SIGKILL)
        if timedOut { return (.timedOut(timeout), keeper.text) }
        let signal = status & 0x7f
        if signal != 0 { return (.crashed(signal), keeper.text) }
        let code = (status >> 8) & 0xff
        switch code {
        case 0: return (.consistent, keeper.text)
        case 125: return (.skipped, keeper.text)
        // The shell reports a command killed by signal N as 128+N.
        case 129...192: return (.crashed(code - 128), keeper.text)
        default: return (.inconsistent(code), keeper.text)
        }
    }
}
