#if canImport(Glibc)
import Glibc
#endif

/// Runs jobs in worker processes, a job at a time per worker, so that a job that
/// crashes its worker, makes it exit or never returns costs that one job, not the run.
/// A sweep (one case per job) and a crash-image checker (one image per job) share it.
///
/// The protocol is line-based: the pool writes a job's request as one line on a worker's
/// standard input; the worker answers with one line on its standard output (lines the
/// caller does not accept, such as a routine's own output, are skipped). A worker that
/// dies mid-job gives `.crashed` (a signal) or `.exited` (a status); one that runs past
/// the time limit is killed and gives `.timedOut`. Either way a fresh worker takes its
/// place and the run goes on.
public final class WorkerPool {
    public let executable: String
    public let arguments: [String]
    public let jobs: Int
    /// Wall-clock limit per job, in seconds.
    public let timeout: Double

    /// How one job ended.
    public enum Outcome: Sendable, Equatable {
        /// The worker's answer: one line, without its newline.
        case answered([UInt8])
        /// The worker died of a signal mid-job (`name`: "SIGSEGV").
        case crashed(signal: Int32, name: String)
        /// The worker exited mid-job with this status.
        case exited(status: Int32)
        /// The job ran longer than the limit; its worker was killed.
        case timedOut(seconds: Double)

        /// One line for people: "killed by SIGSEGV (signal 11)", "exited with status 3",
        /// "ran longer than 30 s"; the answer for `.answered`.
        public var reason: String {
            switch self {
            case .answered(let line): String(decoding: line, as: UTF8.self)
            case .crashed(let signal, let name): "killed by \(name) (signal \(signal))"
            case .exited(let status): "exited with status \(status)"
            case .timedOut(let seconds): "ran longer than \(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s"
            }
        }
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    private final class Worker {
        let pid: pid_t
        let input: Int32
        let output: Int32
        var buffer: [UInt8] = []
        var current: Int?
        var started = 0.0
        init(pid: pid_t, input: Int32, output: Int32) {
            self.pid = pid
            self.input = input
            self.output = output
        }
    }

    public init(executable: String, arguments: [String], jobs: Int, timeout: Double = 30) {
        self.executable = executable
        self.arguments = arguments
        self.jobs = max(1, jobs)
        self.timeout = timeout
    }

    /// The signal's name ("SIGSEGV"), or "signal N" for one without a common name.
    public static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGSYS: "SIGSYS", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
        ]
        return names[signal] ?? "signal \(signal)"
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func spawn() throws(SpawnError) -> Worker {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else {
            throw SpawnError(description: "cannot create a pipe for a worker: \(String(cString: strerror(errno)))")
        }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw SpawnError(description: "cannot create a pipe for a worker: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for fd in [toChild[0], toChild[1], fromChild[0], fromChild[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = [executable] + arguments
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, &cArgs, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SpawnError(description: "cannot start a worker (\(executable)): \(String(cString: strerror(rc)))")
        }
        _ = fcntl(toChild[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fromChild[0], F_SETFD, FD_CLOEXEC)
        return Worker(pid: pid, input: toChild[1], output: fromChild[0])
    }

    /// Closes a worker's pipes and reaps it; how it ended.
    private func retire(_ w: Worker) -> Outcome {
        close(w.input)
        close(w.output)
        var status: Int32 = 0
        while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        if signal != 0 { return .crashed(signal: signal, name: Self.signalName(signal)) }
        return .exited(status: (status >> 8) & 0xff)
    }

    /// Runs every job (a request line each, without its newline) and returns their
    /// outcomes in job order. `accept(job, line)` says whether a line is the job's
    /// answer (others are skipped); `retire(job, answer)` whether the worker must be
    /// replaced after that answer (its state is unknown); `progress(done, total)` is
    /// called after each job.
    public func run(_ requests: [[UInt8]],
                    accept: (Int, [UInt8]) -> Bool = { _, _ in true },
                    retire retireAfter: (Int, [UInt8]) -> Bool = { _, _ in false },
                    progress: (Int, Int) -> Void = { _, _ in }) throws(SpawnError) -> [Outcome] {
        signal(SIGPIPE, SIG_IGN)
        var queue = requests.indices[...]
        var outcomes = [Outcome?](repeating: nil, count: requests.count)
        var done = 0
        var workers: [Worker] = []
        for _ in 0..<min(jobs, max(1, requests.count)) { workers.append(try spawn()) }
        defer { for w in workers { kill(w.pid, SIGKILL); _ = retire(w) } }

        func assign(_ w: Worker) {
            guard w.current == nil, let j = queue.popFirst() else { return }
            let line = requests[j] + [0x0A]
            w.current = j
            w.started = Self.now()
            _ = line.withUnsafeBytes { write(w.input, $0.baseAddress, $0.count) }
        }
        func finish(_ j: Int, _ o: Outcome) {
            outcomes[j] = o
            done += 1
            progress(done, requests.count)
        }

        while done < requests.count {
            for w in workers { assign(w) }
            var fds = workers.map { pollfd(fd: $0.output, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready < 0 && errno != EINTR { throw SpawnError(description: "poll failed: \(String(cString: strerror(errno)))") }
            let t = Self.now()
            for i in workers.indices {
                let w = workers[i]
                if fds[i].revents != 0 {
                    var chunk = [UInt8](repeating: 0, count: 65536)
                    let n = read(w.output, &chunk, chunk.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 {
                        // The worker is gone: its job (if any) ends with the reason.
                        let how = retire(w)
                        if let j = w.current { finish(j, how) }
                        workers[i] = try spawn()
                        continue
                    }
                    w.buffer += chunk[0..<n]
                    var replace = false
                    while let nl = w.buffer.firstIndex(of: 0x0A) {
                        let line = Array(w.buffer[..<nl])
                        w.buffer.removeSubrange(...nl)
                        if let j = w.current, accept(j, line) {
                            w.current = nil
                            finish(j, .answered(line))
                            if retireAfter(j, line) { replace = true }
                        }
                    }
                    if replace {
                        _ = retire(w)
                        workers[i] = try spawn()
                    }
                } else if let j = w.current, t - w.started > timeout {
                    kill(w.pid, SIGKILL)
                    _ = retire(w)
                    finish(j, .timedOut(seconds: timeout))
                    workers[i] = try spawn()
                }
            }
            if queue.isEmpty {
                // Let idle workers go once nothing is left for them.
                for (i, w) in workers.enumerated().reversed() where w.current == nil && workers.count > 1 {
                    _ = retire(w)
                    workers.remove(at: i)
                }
            }
        }
        return outcomes.map { $0! }
    }
}
