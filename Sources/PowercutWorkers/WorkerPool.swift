#if canImport(Glibc)
import Glibc
#endif

/// Runs jobs in worker processes, so that a job that crashes its worker, makes it exit
/// or never returns costs that job (or, for a batch, the one step it was in), not the
/// run. Every part of powercut that runs code it cannot trust goes through this one pool:
/// a sweep (one case per job, exec'd workers) and the crash-image checker (batches of
/// images, forked workers).
///
/// Two ways to start a worker, one supervision:
///
/// - **Exec'd workers** (`init(executable:arguments:jobs:timeout:)`, `run(_:accept:…)`):
///   long-lived programs. The pool writes a job's request as one line on a worker's
///   standard input; the worker answers with one line on its standard output (lines the
///   caller does not accept, such as a routine's own output, are skipped). The time
///   limit runs from the moment the request is written.
/// - **Forked workers** (`init(forking:timeout:)`, `run(batches:…)`): a child forked
///   per job runs the caller's closure with the parent's memory as it was at the fork
///   (nothing to serialize: a batch of work the parent holds). The child sends messages
///   (any bytes; the pool frames them as escaped lines on a pipe) and marks its steps in
///   a page the pool shares with it (`BatchWorker.begin`/`end`): which step it is in,
///   since when, how many it completed. The time limit applies to one step. When the
///   job ends, the caller learns how it ended and how far it got, and may submit
///   follow-up jobs (the rest of a batch after the step that crashed).
///
/// Shared by both: the poll loop over the workers' pipes, line splitting, job
/// accounting, outcomes (`.crashed` for a death by a signal, `.exited` for an exit
/// mid-job, `.timedOut` after the pool killed it), and a fresh worker in a dead one's
/// place. Messages and answers that arrived before a worker died are kept.
public final class WorkerPool {
    /// How workers start.
    public enum Launch: Sendable {
        /// A program started with these arguments, serving request lines.
        case exec(executable: String, arguments: [String])
        /// A child of this process, forked per job.
        case fork
    }

    public let launch: Launch
    /// Workers at a time.
    public let jobs: Int
    /// Wall-clock limit, in seconds, per job (exec'd workers) or per step (forked ones).
    public let timeout: Double

    /// How one job ended.
    public enum Outcome: Sendable, Equatable {
        /// The worker's answer: one line, without its newline.
        case answered([UInt8])
        /// A forked job's closure returned.
        case completed
        /// The worker died of a signal mid-job (`name`: "SIGSEGV").
        case crashed(signal: Int32, name: String)
        /// The worker exited mid-job with this status.
        case exited(status: Int32)
        /// The job (or its step) ran longer than the limit; its worker was killed.
        case timedOut(seconds: Double)

        /// One line for people: "killed by SIGSEGV (signal 11)", "exited with status 3",
        /// "ran longer than 30 s"; the answer for `.answered`.
        public var reason: String {
            switch self {
            case .answered(let line): String(decoding: line, as: UTF8.self)
            case .completed: "completed"
            case .crashed(let signal, let name): "killed by \(name) (signal \(signal))"
            case .exited(let status): "exited with status \(status)"
            case .timedOut(let seconds): "ran longer than \(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s"
            }
        }
    }

    /// How far a forked job got, read from its shared page when it ended.
    public struct Progress: Sendable, Equatable {
        /// The step it was in when it died (`inStep`), or the last one it began.
        public var step: Int64
        /// Whether it died between `begin` and `end` of `step`.
        public var inStep: Bool
        /// Steps it completed (`end` calls).
        public var completed: Int64
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A forked job's side of the pool, in the child.
    public struct BatchWorker {
        /// The pool's slot this job runs in (0..<jobs), stable while it runs: a place for
        /// per-slot resources such as scratch files.
        public let slot: Int
        @usableFromInline let page: UnsafeMutablePointer<Int64>
        let pipe: Int32

        /// Enters step `step`: the time limit runs from here until `end()`. (Inlinable:
        /// called once per image by the crash checker.)
        @inlinable public func begin(_ step: Int64) {
            page[Page.step] = step
            // One word says both that a step runs and since when; its store follows the
            // clock's call, which the step's store cannot be moved past.
            page[Page.started] = Int64(bitPattern: WorkerPool.now().bitPattern)
        }

        /// Leaves the current step (completed).
        @inlinable public func end() {
            page[Page.started] = 0
            page[Page.completed] += 1
        }

        /// Sends a message to the parent (any bytes). A worker that cannot write ends
        /// with status 3 (its parent is gone).
        public func send(_ bytes: [UInt8]) {
            var line: [UInt8] = []
            line.reserveCapacity(bytes.count + 8)
            for b in bytes {
                switch b {
                case 0x0A: line += [0x5C, 0x6E]
                case 0x5C: line += [0x5C, 0x5C]
                default: line.append(b)
                }
            }
            line.append(0x0A)
            var done = 0
            while done < line.count {
                let n = line.withUnsafeBytes { write(pipe, $0.baseAddress! + done, $0.count - done) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { _exit(3) }
                done += n
            }
        }
    }

    /// Word offsets in a forked worker's page (one page per slot, written by the child,
    /// read by the parent; aligned 8-byte words, so every read sees a whole value).
    /// `started` is the step's start (a monotonic time's bits, never 0) or 0 between
    /// steps, so the parent never sees a step in progress with another step's start.
    @usableFromInline enum Page {
        @usableFromInline static let step = 0, started = 1, completed = 2, returned = 3
        static let size = 4096
    }

    private final class Worker {
        let pid: pid_t
        /// Exec'd workers: their standard input; forked ones: -1.
        let input: Int32
        let output: Int32
        let slot: Int
        var buffer: [UInt8] = []
        /// Index of the job in hand.
        var current: Int?
        var started = 0.0
        var killedForTimeout = false
        init(pid: pid_t, input: Int32, output: Int32, slot: Int) {
            self.pid = pid
            self.input = input
            self.output = output
            self.slot = slot
        }
    }

    /// Forked workers' pages, one per slot.
    private var pages: [UnsafeMutablePointer<Int64>] = []

    /// A pool of exec'd workers: `executable` with `arguments`, serving request lines.
    public init(executable: String, arguments: [String], jobs: Int, timeout: Double = 30) {
        launch = .exec(executable: executable, arguments: arguments)
        self.jobs = max(1, jobs)
        self.timeout = timeout
    }

    /// A pool of forked workers, `jobs` at a time, each step limited to `timeout` seconds.
    public init(forking jobs: Int, timeout: Double) throws(SpawnError) {
        launch = .fork
        self.jobs = max(1, jobs)
        self.timeout = timeout
        for _ in 0..<self.jobs {
            guard let p = mmap(nil, Page.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
                throw SpawnError(description: "cannot map a page shared with workers: \(Self.errnoText())")
            }
            pages.append(p.bindMemory(to: Int64.self, capacity: Page.size / 8))
        }
    }

    deinit {
        for p in pages { munmap(p, Page.size) }
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

    @usableFromInline static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    // MARK: starting and ending workers

    private func spawn(_ executable: String, _ arguments: [String], slot: Int) throws(SpawnError) -> Worker {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else {
            throw SpawnError(description: "cannot create a pipe for a worker: \(Self.errnoText())")
        }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw SpawnError(description: "cannot create a pipe for a worker: \(Self.errnoText())")
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
        return Worker(pid: pid, input: toChild[1], output: fromChild[0], slot: slot)
    }

    /// Forks a child that runs `body` with the slot's page and a message pipe, then exits 0.
    private func fork(slot: Int, _ body: (BatchWorker) -> Void) throws(SpawnError) -> Worker {
        let page = pages[slot]
        for i in 0..<8 { page[i] = 0 }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "cannot create a pipe for a worker: \(Self.errnoText())") }
        // Output of the parent's buffered streams must not be written twice.
        fflush(nil)
        let pid = Glibc.fork()
        if pid < 0 {
            close(fds[0]); close(fds[1])
            throw SpawnError(description: "cannot fork a worker: \(Self.errnoText())")
        }
        if pid == 0 {
            close(fds[0])
            // Programs the job starts do not hold the pipe open.
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            // A crash in the job is the worker's death by that signal, not a report of the runtime's.
            for sig in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS] { signal(sig, SIG_DFL) }
            body(BatchWorker(slot: slot, page: page, pipe: fds[1]))
            page[Page.returned] = 1
            _exit(0)
        }
        close(fds[1])
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        return Worker(pid: pid, input: -1, output: fds[0], slot: slot)
    }

    /// Closes a worker's pipes and reaps it; how it ended.
    private func reap(_ w: Worker) -> Outcome {
        if w.input >= 0 { close(w.input) }
        close(w.output)
        var status: Int32 = 0
        while waitpid(w.pid, &status, 0) < 0 && errno == EINTR {}
        if w.killedForTimeout { return .timedOut(seconds: timeout) }
        let signal = status & 0x7f
        if signal != 0 { return .crashed(signal: signal, name: Self.signalName(signal)) }
        let code = (status >> 8) & 0xff
        if w.input < 0 && code == 0 && pages[w.slot][Page.returned] == 1 { return .completed }
        return .exited(status: code)
    }

    // MARK: the one supervision loop

    /// Runs the queue's jobs (indices into the run's jobs) on `jobs` slots until none is
    /// left and no worker holds one. What differs between exec'd and forked workers comes
    /// in as closures:
    /// - `start(j, slot, worker)`: starts job `j` on `slot`, in `worker` if it is an idle
    ///   live one that serves several jobs, or in a new worker;
    /// - `line(j, line)`: a line from the worker holding job `j`; whether it ends the job
    ///   (an answer) and whether the worker must go after it;
    /// - `ended(j, outcome, slot)`: job `j` ended so;
    /// - `more()`: jobs added since (follow-ups);
    /// - `overdue(worker, now)`: whether the worker's job (or step) is past the limit;
    /// - `round(live)`: after each round.
    private func supervise(_ initial: Int,
                           start: (_ j: Int, _ slot: Int, _ worker: Worker?) throws -> Worker,
                           line: (_ j: Int, _ line: [UInt8]) throws -> (ends: Bool, retire: Bool),
                           ended: (_ j: Int, _ how: Outcome, _ slot: Int) throws -> Void,
                           more: () -> Int = { 0 },
                           overdue: (_ w: Worker, _ now: Double) -> Bool,
                           round: (_ live: [Worker]) -> Void = { _ in }) throws {
        signal(SIGPIPE, SIG_IGN)
        var queue = 0..<initial
        var slots = [Worker?](repeating: nil, count: jobs)
        defer {
            for case let w? in slots {
                kill(w.pid, SIGKILL)
                _ = reap(w)
            }
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            queue = queue.lowerBound..<queue.upperBound + more()
            for s in slots.indices where slots[s]?.current == nil {
                guard let j = queue.popFirst() else { break }
                let w = try start(j, s, slots[s])
                w.current = j
                w.started = Self.now()
                w.killedForTimeout = false
                slots[s] = w
            }
            let live = slots.compactMap { $0 }
            if queue.isEmpty && live.allSatisfy({ $0.current == nil }) { break }
            var fds = live.map { pollfd(fd: $0.output, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 50)
            if ready < 0 && errno != EINTR { throw SpawnError(description: "poll failed: \(Self.errnoText())") }
            let t = Self.now()
            for (i, w) in live.enumerated() {
                if fds[i].revents != 0 {
                    let n = chunk.withUnsafeMutableBytes { read(w.output, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 {
                        // The worker is gone: its job (if any) ends with the reason.
                        let how = reap(w)
                        slots[w.slot] = nil
                        if let j = w.current { try ended(j, how, w.slot) }
                        continue
                    }
                    w.buffer += chunk[0..<n]
                    var retire = false
                    var at = 0
                    while let nl = w.buffer[at...].firstIndex(of: 0x0A) {
                        let text = Array(w.buffer[at..<nl])
                        at = nl + 1
                        guard let j = w.current else { continue }
                        let r = try line(j, text)
                        if r.ends {
                            w.current = nil
                            try ended(j, .answered(text), w.slot)
                            retire = retire || r.retire
                        }
                    }
                    w.buffer.removeFirst(at)
                    if retire {
                        _ = reap(w)
                        slots[w.slot] = nil
                    }
                } else if w.current != nil && !w.killedForTimeout && overdue(w, t) {
                    // Its end comes as the pipe's end of file, with the outcome `.timedOut`.
                    kill(w.pid, SIGKILL)
                    w.killedForTimeout = true
                }
            }
            if queue.isEmpty {
                // Let idle workers go once nothing is left for them.
                for s in slots.indices where slots[s] != nil && slots[s]!.current == nil {
                    _ = reap(slots[s]!)
                    slots[s] = nil
                }
            }
            round(slots.compactMap { $0 })
        }
    }

    // MARK: exec'd workers

    /// Runs every job (a request line each, without its newline) in exec'd workers and
    /// returns their outcomes in job order. `accept(job, line)` says whether a line is
    /// the job's answer (others are skipped); `retire(job, answer)` whether the worker
    /// must be replaced after that answer (its state is unknown); `progress(done, total)`
    /// is called after each job.
    public func run(_ requests: [[UInt8]],
                    accept: (Int, [UInt8]) -> Bool = { _, _ in true },
                    retire retireAfter: (Int, [UInt8]) -> Bool = { _, _ in false },
                    progress: (Int, Int) -> Void = { _, _ in }) throws(SpawnError) -> [Outcome] {
        guard case .exec(let executable, let arguments) = launch else {
            preconditionFailure("run(_:accept:retire:progress:) needs a pool of exec'd workers")
        }
        var outcomes = [Outcome?](repeating: nil, count: requests.count)
        var done = 0
        do {
            try supervise(
                requests.count,
                start: { j, slot, worker in
                    let w = if let worker { worker } else { try spawn(executable, arguments, slot: slot) }
                    let line = requests[j] + [0x0A]
                    _ = line.withUnsafeBytes { write(w.input, $0.baseAddress, $0.count) }
                    return w
                },
                line: { j, line in accept(j, line) ? (true, retireAfter(j, line)) : (false, false) },
                ended: { j, how, _ in
                    outcomes[j] = how
                    done += 1
                    progress(done, requests.count)
                },
                overdue: { w, now in now - w.started > timeout })
        } catch let e as SpawnError {
            throw e
        } catch {
            throw SpawnError(description: "\(error)")
        }
        return outcomes.map { $0! }
    }

    // MARK: forked workers

    /// Runs `batches` in forked workers: each job's child calls `body(job, worker)`, and
    /// `message(job, bytes)` is called in the parent with each message it sends, as they
    /// come. When a job ends, `finished(job, outcome, progress)` is called with how it
    /// ended (`.completed` if `body` returned) and how far it got, and returns jobs to
    /// add to the queue (for instance the rest of a batch after the step that crashed).
    /// `progress(steps)` is called every round with the steps completed so far, in
    /// finished and running jobs. Throws what a handler throws, or a `SpawnError`.
    public func run<Job>(batches: [Job],
                         body: (Job, BatchWorker) -> Void,
                         message: (Job, [UInt8]) throws -> Void,
                         finished: (Job, Outcome, Progress) throws -> [Job],
                         progress: (Int64) -> Void = { _ in }) throws {
        guard case .fork = launch else { preconditionFailure("run(batches:…) needs a pool of forked workers") }
        var all = batches
        var added = 0
        var completedSteps: Int64 = 0
        try supervise(
            all.count,
            start: { j, slot, _ in
                let job = all[j]
                return try fork(slot: slot) { worker in body(job, worker) }
            },
            line: { j, line in
                try message(all[j], Self.unescape(line))
                return (false, false)
            },
            ended: { j, how, slot in
                let page = pages[slot]
                let reached = Progress(step: page[Page.step], inStep: page[Page.started] != 0, completed: page[Page.completed])
                completedSteps += reached.completed
                let next = try finished(all[j], how, reached)
                all += next
                added += next.count
            },
            more: {
                defer { added = 0 }
                return added
            },
            overdue: { w, now in
                let started = pages[w.slot][Page.started]
                return started != 0 && now - Double(bitPattern: UInt64(bitPattern: started)) > timeout
            },
            round: { live in progress(completedSteps + live.reduce(0) { $0 + pages[$1.slot][Page.completed] }) })
    }

    /// A message line as sent: `\n` and `\\` back to the bytes.
    static func unescape(_ line: [UInt8]) -> [UInt8] {
        guard line.contains(0x5C) else { return line }
        var out: [UInt8] = []
        out.reserveCapacity(line.count)
        var escaped = false
        for b in line {
            if escaped {
                out.append(b == 0x6E ? 0x0A : b)
                escaped = false
            } else if b == 0x5C {
                escaped = true
            } else {
                out.append(b)
            }
        }
        return out
    }
}
