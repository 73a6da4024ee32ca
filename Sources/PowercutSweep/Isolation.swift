import Glibc

/// A child process run with a time limit, the way a routine is run for `record` and
/// probed before a sweep: whatever the routine does (crash, exit, hang, print), it does
/// it to the child. The child writes its result (a trace) on descriptor 3 and short
/// status lines on descriptor 4; its standard output goes to standard error, so that a
/// routine that prints cannot corrupt what powercut writes on its own standard output.
/// The Swift runtime's backtracer is off in the child: a crash is one line in the parent.
public struct IsolatedRun: Sendable {
    /// How the child ended.
    public enum End: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        /// Killed after running past the time limit (seconds).
        case timedOut(Double)
    }

    public var end: End
    /// Bytes the child wrote on descriptor 3.
    public var payload: [UInt8]
    /// Lines the child wrote on descriptor 4.
    public var status: [String]

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The child's status-line descriptor and result descriptor.
    public static let statusDescriptor: Int32 = 4
    public static let resultDescriptor: Int32 = 3

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Runs `executable arguments` and waits for it, at most `timeout` seconds.
    public static func run(executable: String, arguments: [String], timeout: Double) throws(SpawnError) -> IsolatedRun {
        var result: [Int32] = [0, 0], status: [Int32] = [0, 0]
        guard pipe(&result) == 0 else {
            throw SpawnError(description: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        guard pipe(&status) == 0 else {
            close(result[0])
            close(result[1])
            throw SpawnError(description: "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in result + status { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, 2, 1)
        posix_spawn_file_actions_adddup2(&actions, result[1], resultDescriptor)
        posix_spawn_file_actions_adddup2(&actions, status[1], statusDescriptor)
        var env = [String]()
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if !s.hasPrefix("SWIFT_BACKTRACE=") { env.append(s) }
            e += 1
        }
        env.append("SWIFT_BACKTRACE=enable=no")
        var cArgs = ([executable] + arguments).map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, &cArgs, &cEnv)
        close(result[1])
        close(status[1])
        guard rc == 0 else {
            close(result[0])
            close(status[0])
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        var payload: [UInt8] = [], statusBytes: [UInt8] = []
        var open = [result[0], status[0]]
        let deadline = now() + timeout
        var chunk = [UInt8](repeating: 0, count: 65536)
        var end: End?
        var waitStatus: Int32 = 0
        while end == nil {
            let left = deadline - now()
            if left <= 0 {
                kill(pid, SIGKILL)
                waitpid(pid, &waitStatus, 0)
                end = .timedOut(timeout)
                break
            }
            if open.isEmpty {
                // Both pipes closed: wait for the exit (a child may close them and go on).
                let w = waitpid(pid, &waitStatus, WNOHANG)
                if w == pid { break }
                usleep(UInt32(min(10_000, max(1, left * 1e6))))
                continue
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(1000, max(1, left * 1000))))
            if ready < 0 && errno != EINTR {
                kill(pid, SIGKILL)
                waitpid(pid, &waitStatus, 0)
                throw SpawnError(description: "poll failed: \(String(cString: strerror(errno)))")
            }
            for f in fds where f.revents != 0 {
                let n = read(f.fd, &chunk, chunk.count)
                if n > 0 {
                    if f.fd == result[0] { payload += chunk[0..<n] } else { statusBytes += chunk[0..<n] }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(f.fd)
                    open.removeAll { $0 == f.fd }
                }
            }
        }
        for fd in open { close(fd) }
        if end == nil {
            let signal = waitStatus & 0x7f
            end = signal != 0 ? .signalled(signal) : .exited((waitStatus >> 8) & 0xff)
        }
        let lines = String(decoding: statusBytes, as: UTF8.self).split(separator: "\n").map(String.init)
        return IsolatedRun(end: end!, payload: payload, status: lines)
    }
}

/// "SIGSEGV (segmentation fault)" for 11: the name a user looks up, then what it means.
public func signalDescription(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
        9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
        16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
        23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
        30: "SIGPWR", 31: "SIGSYS",
    ]
    let name = names[signal] ?? "signal \(signal)"
    guard let s = strsignal(signal) else { return name }
    return "\(name) (\(String(cString: s).lowercased()))"
}

/// The signals a crashing routine raises. A child that runs routines sets them to their
/// default action, so that the kernel ends it with the real signal (no handler, no
/// backtrace, no handler stepped by the recorder).
public func restoreCrashSignals() {
    for s in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP] { signal(s, SIG_DFL) }
}

/// Time limits (`--timeout`): seconds, finite, from 0.1 s to a day. Zero, NaN, infinity
/// and 1e300 would fail cases at random or never.
public enum TimeLimit {
    public static let range = 0.1...86_400.0

    /// Nil if `seconds` is a usable limit, else what is wrong with it.
    public static func problem(_ seconds: Double) -> String? {
        if seconds.isFinite && range.contains(seconds) { return nil }
        return "--timeout must be a number of seconds from 0.1 to 86400 (got \(seconds))"
    }
}
