import Foundation
import Glibc

/// Runs sweep cases in worker processes, one case at a time per worker, so that a
/// routine that crashes or never returns costs one case, not the sweep. A worker reads
/// `DST SRC SIZE` lines on its standard input and answers each with one `CaseResult`
/// as a JSON line on its standard output. A worker that dies mid-case makes that case
/// `crashed`; one that runs past the time limit is killed and its case is `budget`.
/// Either way a fresh worker takes its place.
public final class WorkerPool {
    public let executable: String
    public let arguments: [String]
    public let jobs: Int
    /// Wall-clock limit per case, in seconds (the recorder's instruction budget is the
    /// first line of defence; this catches a routine stuck in a system call).
    public let caseTimeout: Double

    private final class Worker {
        let pid: pid_t
        let input: Int32
        let output: Int32
        var buffer: [UInt8] = []
        var current: SweepCase?
        var started = 0.0
        init(pid: pid_t, input: Int32, output: Int32) {
            self.pid = pid
            self.input = input
            self.output = output
        }
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(executable: String, arguments: [String], jobs: Int, caseTimeout: Double = 30) {
        self.executable = executable
        self.arguments = arguments
        self.jobs = max(1, jobs)
        self.caseTimeout = caseTimeout
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func spawn() throws -> Worker {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw SpawnError(description: "cannot create a pipe for a sweep worker: \(String(cString: strerror(errno)))")
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
            throw SpawnError(description: "cannot start a sweep worker (\(executable)): \(String(cString: strerror(rc)))")
        }
        _ = fcntl(toChild[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fromChild[0], F_SETFD, FD_CLOEXEC)
        return Worker(pid: pid, input: toChild[1], output: fromChild[0])
    }

    private func retire(_ w: Worker) -> String {
        close(w.input)
        close(w.output)
        var status: Int32 = 0
        waitpid(w.pid, &status, 0)
        let signal = status & 0x7f
        if signal != 0 { return "killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "worker exited with status \((status >> 8) & 0xff)"
    }

    /// Runs every case; `progress(done, total)` after each. Results come back in grid order.
    public func run(_ cases: [SweepCase], progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseResult] {
        signal(SIGPIPE, SIG_IGN)
        var queue = cases[...]
        var results: [CaseResult] = []
        results.reserveCapacity(cases.count)
        var workers: [Worker] = []
        for _ in 0..<min(jobs, max(1, cases.count)) { workers.append(try spawn()) }
        defer { for w in workers { kill(w.pid, SIGKILL); _ = retire(w) } }
        let decoder = JSONDecoder()

        func assign(_ w: Worker) {
            guard w.current == nil, let c = queue.popFirst() else { return }
            let line = Array("\(c.dstOffset) \(c.srcOffset) \(c.size)\n".utf8)
            w.current = c
            w.started = Self.now()
            _ = line.withUnsafeBytes { write(w.input, $0.baseAddress, $0.count) }
        }

        func replace(_ i: Int, reason: String) throws {
            if let c = workers[i].current {
                results.append(CaseResult(case: c, status: .crashed, message: reason))
                progress(results.count, cases.count)
            }
            workers[i] = try spawn()
        }

        while results.count < cases.count {
            for w in workers { assign(w) }
            var fds = workers.map { pollfd(fd: $0.output, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 100)
            if ready < 0 && errno != EINTR { throw SpawnError(description: "poll failed: \(String(cString: strerror(errno)))") }
            let t = Self.now()
            for i in workers.indices {
                let w = workers[i]
                if fds[i].revents != 0 {
                    var exiting = false
                    var chunk = [UInt8](repeating: 0, count: 65536)
                    let n = read(w.output, &chunk, chunk.count)
                    if n <= 0 {
                        let why = retire(w)
                        try replace(i, reason: "the routine crashed the worker: \(why)")
                        continue
                    }
                    w.buffer += chunk[0..<n]
                    while let nl = w.buffer.firstIndex(of: 0x0A) {
                        let line = Array(w.buffer[..<nl])
                        w.buffer.removeSubrange(...nl)
                        if let r = try? decoder.decode(CaseResult.self, from: Data(line)), let c = w.current,
                           r.sweepCase == c {
                            results.append(r)
                            w.current = nil
                            progress(results.count, cases.count)
                            // A worker exits after an abandoned call (its state is unknown).
                            if r.status == .budget || r.status == .error { exiting = true }
                        }
                    }
                    if exiting {
                        _ = retire(w)
                        try replace(i, reason: "")
                    }
                } else if let c = w.current, t - w.started > caseTimeout {
                    kill(w.pid, SIGKILL)
                    _ = retire(w)
                    results.append(CaseResult(case: c, status: .budget, message: "ran longer than \(Int(caseTimeout)) s"))
                    progress(results.count, cases.count)
                    w.current = nil
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
        return results.sorted { $0.sweepCase < $1.sweepCase }
    }
}
