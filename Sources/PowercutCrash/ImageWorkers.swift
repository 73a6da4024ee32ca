import Glibc

/// One image's verdict from a worker: its place in the batch (over every image the
/// cursors yield, repeated ones included), what the checker said, its first output.
struct WorkerResult {
    var ordinal: Int64
    var verdict: CheckVerdict
    var output: String
}

/// Checks the images of a batch of cuts in worker processes forked for the batch: a
/// worker inherits the cuts, walks every image in order writing only what changed,
/// and checks its share (chunks of consecutive images, so its image moves a few lines
/// at a time). Only failures travel back, through a pipe; progress and the image in
/// hand sit in a page shared with the parent. A library checker runs inside the
/// worker (no exec per image); if it crashes or runs past the time limit, the worker
/// dies or is killed, that image gets the verdict, and a fresh worker goes on after it.
/// A command checker runs as a child of the worker, which enforces the limit itself.
final class ImageWorkers {
    let layout: ImageLayout
    let jobs: Int
    let timeout: Double
    private let function: LoadedFunction?
    private let command: CommandRunner?
    /// Command slots whose files hold the newest image of the last cut checked.
    private var slotClean: [Bool]

    init(layout: ImageLayout, checker: CheckerSpec, jobs: Int, timeout: Double) throws(CrashError) {
        self.layout = layout
        self.jobs = max(1, jobs)
        self.timeout = timeout
        switch checker {
        case .command(let c):
            command = CommandRunner(command: c, timeout: timeout)
            function = nil
        case .library(let path, let name):
            function = try LoadedFunction(path: path, name: name)
            command = nil
        }
        slotClean = [Bool](repeating: false, count: self.jobs)
    }

    /// Images per share: libraries take long runs of consecutive images, commands alternate.
    private var chunk: Int64 { function != nil ? 1024 : 1 }

    private struct Running {
        var pid: pid_t
        var fd: Int32
        var shared: UnsafeMutablePointer<Int64>
        var slot: Int
        var buffer: [UInt8] = []
        var killedForTimeout = false
    }

    /// Shared page: [0] image in hand, [1] in a check (0/1), [2] check start (Double bits), [3] images checked.
    private static func sharedPage() throws(CrashError) -> UnsafeMutablePointer<Int64> {
        guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw CrashError(.system, "cannot map a page shared with workers: \(errnoText())")
        }
        let s = p.bindMemory(to: Int64.self, capacity: 8)
        for i in 0..<8 { s[i] = 0 }
        return s
    }

    /// Checks every image of `batch` that is not repeated from the previous cut.
    /// `mirror` is the newest content, at the cut before the batch, of every line written.
    func check(_ batch: [CutImages], mirror: [LineImage], progress: (Int64) -> Void) throws(CrashError) -> (results: [WorkerResult], checked: Int64) {
        signal(SIGPIPE, SIG_IGN)
        var results: [WorkerResult] = []
        var finishedChecks: Int64 = 0
        var running: [Running] = []
        defer {
            for r in running {
                kill(r.pid, SIGKILL)
                close(r.fd)
                var st: Int32 = 0
                waitpid(r.pid, &st, 0)
                munmap(r.shared, 4096)
            }
        }
        for w in 0..<jobs { running.append(try spawn(slot: w, start: 0, batch: batch, mirror: mirror)) }

        var chunkBuffer = [UInt8](repeating: 0, count: 65536)
        while !running.isEmpty {
            var fds = running.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), 50)
            if ready < 0 && errno != EINTR { throw CrashError(.system, "poll failed: \(errnoText())") }
            var i = 0
            while i < running.count {
                if fds.count > i && fds[i].revents != 0 {
                    let n = chunkBuffer.withUnsafeMutableBytes { read(running[i].fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        running[i].buffer += chunkBuffer[0..<n]
                        Self.parse(&running[i].buffer, into: &results)
                        i += 1
                        continue
                    }
                    if n < 0 && errno == EINTR { i += 1; continue }
                    // The worker is gone: done, or died in a check.
                    var r = running.remove(at: i)
                    fds.remove(at: i)
                    close(r.fd)
                    var status: Int32 = 0
                    while waitpid(r.pid, &status, 0) < 0 && errno == EINTR {}
                    Self.parse(&r.buffer, into: &results)
                    finishedChecks += r.shared[3]
                    let inCheck = r.shared[1] == 1
                    let current = r.shared[0]
                    munmap(r.shared, 4096)
                    let signal = status & 0x7f, code = (status >> 8) & 0xff
                    if signal == 0 && code == 0 && !inCheck {
                        if command != nil { slotClean[r.slot] = true }
                        continue
                    }
                    slotClean[r.slot] = false
                    guard inCheck else {
                        throw CrashError(.system, "a checker worker died outside a check (\(signal != 0 ? "signal \(signal)" : "status \(code)"))")
                    }
                    let verdict: CheckVerdict
                    var note = ""
                    if r.killedForTimeout { verdict = .timedOut(timeout) }
                    else if signal != 0 { verdict = .crashed(signal) }
                    else {
                        verdict = .inconsistent(code)
                        note = "[the checker ended its worker process with exit status \(code)]\n"
                    }
                    results.append(WorkerResult(ordinal: current, verdict: verdict,
                                                output: note + Self.workerOutput(layout: layout, slot: r.slot)))
                    finishedChecks += 1
                    running.append(try spawn(slot: r.slot, start: current + 1, batch: batch, mirror: mirror))
                    continue
                }
                i += 1
            }
            // Time limits (a command worker enforces its own; this is the backstop).
            let now = monotonicNow()
            let limit = command == nil ? timeout : timeout + 10
            for j in running.indices where running[j].shared[1] == 1 && !running[j].killedForTimeout {
                let started = Double(bitPattern: UInt64(bitPattern: running[j].shared[2]))
                if now - started > limit {
                    kill(running[j].pid, SIGKILL)
                    running[j].killedForTimeout = true
                }
            }
            progress(finishedChecks + running.reduce(0) { $0 + $1.shared[3] })
        }
        results.sort { $0.ordinal < $1.ordinal }
        return (results, finishedChecks)
    }

    private static func parse(_ buffer: inout [UInt8], into results: inout [WorkerResult]) {
        var at = 0
        while buffer.count - at >= 17 {
            var ordinal: Int64 = 0, value: Int32 = 0, length: UInt32 = 0
            withUnsafeMutableBytes(of: &ordinal) { $0.copyBytes(from: buffer[at..<at + 8]) }
            let code = buffer[at + 8]
            withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: buffer[at + 9..<at + 13]) }
            withUnsafeMutableBytes(of: &length) { $0.copyBytes(from: buffer[at + 13..<at + 17]) }
            guard buffer.count - at - 17 >= Int(length) else { break }
            let text = String(decoding: buffer[at + 17..<at + 17 + Int(length)], as: UTF8.self)
            results.append(WorkerResult(ordinal: ordinal, verdict: CheckVerdict(code: code, value: value), output: text))
            at += 17 + Int(length)
        }
        buffer.removeFirst(at)
    }

    private static func outputPath(layout: ImageLayout, slot: Int) -> String { layout.workDirectory + "/output-\(slot)" }

    /// What a library checker printed before its worker died.
    private static func workerOutput(layout: ImageLayout, slot: Int) -> String {
        let fd = open(outputPath(layout: layout, slot: slot), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var keeper = OutputKeeper()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            buffer.withUnsafeBytes { keeper.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if keeper.dropped > 0 { break }
        }
        return keeper.text
    }

    private func spawn(slot: Int, start: Int64, batch: [CutImages], mirror: [LineImage]) throws(CrashError) -> Running {
        let shared = try Self.sharedPage()
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CrashError(.system, "cannot create a pipe: \(errnoText())") }
        // Output of the parent's buffered streams must not be written twice.
        fflush(nil)
        let pid = fork()
        if pid < 0 { throw CrashError(.system, "cannot fork a checker worker: \(errnoText())") }
        if pid == 0 {
            close(fds[0])
            work(slot: slot, start: start, batch: batch, mirror: mirror, out: fds[1], shared: shared)
            _exit(0)
        }
        close(fds[1])
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        return Running(pid: pid, fd: fds[0], shared: shared, slot: slot)
    }

    // MARK: in the worker

    private func send(_ fd: Int32, _ ordinal: Int64, _ verdict: CheckVerdict, _ output: String) {
        var record: [UInt8] = []
        withUnsafeBytes(of: ordinal) { record += $0 }
        record.append(verdict.code)
        withUnsafeBytes(of: verdict.value) { record += $0 }
        let text = Array(output.utf8)
        withUnsafeBytes(of: UInt32(text.count)) { record += $0 }
        record += text
        var done = 0
        while done < record.count {
            let n = record.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { _exit(3) }
            done += n
        }
    }

    private func work(slot: Int, start: Int64, batch: [CutImages], mirror: [LineImage], out: Int32,
                      shared: UnsafeMutablePointer<Int64>) {
        // A checker's crash is the worker's death by that signal, not a report of the runtime's.
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS] { signal(sig, SIG_DFL) }
        let share = Int64(slot), chunk = self.chunk, jobs = Int64(self.jobs)
        func mine(_ o: Int64) -> Bool { o >= start && (o / chunk) % jobs == share }
        if let function {
            // The library's output goes to a file, kept for images it fails.
            let path = Self.outputPath(layout: layout, slot: slot)
            let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { _exit(4) }
            dup2(fd, 1)
            dup2(fd, 2)
            close(fd)
            guard let memory = try? ImageMemory(layout: layout) else { _exit(5) }
            for line in mirror { memory.write(line) }
            var base: Int64 = 0
            for images in batch {
                memory.begin(images)
                // One pointer and length per range tracked at this cut, by address.
                var pointers = images.ranges.map { UnsafeRawPointer(memory.regions[$0].baseAddress) }
                var lengths = images.ranges.map { memory.regions[$0].count }
                var cursor = ImageCursor(images)
                defer { base += Int64(images.planned) }
                while cursor.next() {
                    memory.apply(cursor)
                    let o = base + cursor.index
                    if cursor.covered || !mine(o) { continue }
                    shared[0] = o
                    shared[2] = Int64(bitPattern: monotonicNow().bitPattern)
                    shared[1] = 1
                    let r = pointers.withUnsafeMutableBufferPointer { p in
                        lengths.withUnsafeMutableBufferPointer { l in function.function(p.baseAddress, l.baseAddress, p.count) }
                    }
                    shared[1] = 0
                    shared[3] += 1
                    fflush(nil)
                    let written = lseek(1, 0, SEEK_CUR)
                    if r != 0 {
                        let verdict: CheckVerdict = r == 125 ? .skipped : .inconsistent(r)
                        send(out, o, verdict, Self.workerOutput(layout: layout, slot: slot))
                    }
                    if written > 0 {
                        _ = ftruncate(1, 0)
                        _ = lseek(1, 0, SEEK_SET)
                    }
                }
            }
            _exit(0)
        }
        guard let command else { _exit(6) }
        guard let files = try? ImageFiles(layout: layout, slot: slot, rebuild: !slotClean[slot]) else { _exit(5) }
        if !slotClean[slot] { for line in mirror { files.write(line) } }
        var base: Int64 = 0
        for images in batch {
            for line in images.resets { files.write(line) }
            guard let imagePath = try? files.present(images.ranges) else { _exit(5) }
            var cursor = ImageCursor(images)
            var pending = Set<Int>()
            let event = images.cut > 0 ? String(images.cut - 1) : ""
            defer { base += Int64(images.planned) }
            while cursor.next() {
                pending.formUnion(cursor.changed)
                let o = base + cursor.index
                if cursor.covered || !mine(o) { continue }
                for d in pending { files.write(images.digits[d], cursor.values[d]) }
                pending.removeAll(keepingCapacity: true)
                shared[0] = o
                shared[2] = Int64(bitPattern: monotonicNow().bitPattern)
                shared[1] = 1
                let (verdict, output) = command.run(imagePath: imagePath, cut: images.cut, event: event)
                shared[1] = 0
                shared[3] += 1
                if verdict != .consistent { send(out, o, verdict, output) }
            }
            // Back to this cut's newest image, which the next batch starts from.
            for line in images.lines {
                for d in line.digits { files.write(images.digits[d], 0) }
            }
        }
        _exit(0)
    }
}
