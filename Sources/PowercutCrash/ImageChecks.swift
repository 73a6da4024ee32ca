import Glibc
import PowercutWorkers

/// One image's verdict from a check: its place in the batch (over every image the
/// cursors yield, repeated ones included), what the checker said, its first output.
struct CheckResult {
    var ordinal: Int64
    var verdict: CheckVerdict
    var output: String
}

/// Checks the images of a batch of cuts as batch jobs on the shared worker pool
/// (PowercutWorkers, forked workers): this file holds only what a job does, not how
/// its process is run, timed or replaced.
///
/// The images are split into `jobs` shares (chunks of consecutive images, so a
/// worker's image moves a few lines at a time; libraries take long runs, commands
/// alternate). A share's job inherits the batch's cuts at the fork, walks every image
/// in order writing only what changed, and checks those of its share from a starting
/// image on, each check one step of the job. Only failures travel back, as messages.
/// A library checker runs inside the worker (no exec per image); when it crashes, exits
/// or runs past the time limit, the pool ends the job and says in which step: that
/// image gets the verdict and a new job for the share starts after it. A command
/// checker runs as a child of the worker, which enforces the limit itself (the pool's,
/// ten seconds longer, is the backstop).
final class ImageChecks {
    /// The work of one job: share `share` from image `start` on.
    struct Share {
        var share: Int
        var start: Int64
    }

    let layout: ImageLayout
    let jobs: Int
    let timeout: Double
    private let function: LoadedFunction?
    private let command: CommandRunner?
    private let pool: WorkerPool
    /// Command shares whose files hold the newest image of the last cut checked.
    private var shareClean: [Bool]

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
        do {
            pool = try WorkerPool(forking: self.jobs, timeout: command == nil ? timeout : timeout + 10)
        } catch {
            throw CrashError(.system, error.description)
        }
        shareClean = [Bool](repeating: false, count: self.jobs)
    }

    /// Images per share: libraries take long runs of consecutive images, commands alternate.
    private var chunk: Int64 { function != nil ? 1024 : 1 }

    /// Checks every image of `batch` that is not repeated from the previous cut.
    /// `mirror` is the newest content, at the cut before the batch, of every line written.
    func check(_ batch: [CutImages], mirror: [LineImage], progress: (Int64) -> Void) throws(CrashError) -> (results: [CheckResult], checked: Int64) {
        var results: [CheckResult] = []
        var checked: Int64 = 0
        var diedInChecks: Int64 = 0
        do {
            try pool.run(
                batches: (0..<jobs).map { Share(share: $0, start: 0) },
                body: { job, worker in work(job, batch: batch, mirror: mirror, worker: worker) },
                message: { _, record in
                    guard let r = Self.decode(record) else {
                        throw CrashError(.system, "a checker worker sent a message that could not be read")
                    }
                    results.append(r)
                },
                finished: { job, how, reached throws(CrashError) in
                    checked += reached.completed
                    if how == .completed {
                        if command != nil { shareClean[job.share] = true }
                        return []
                    }
                    shareClean[job.share] = false
                    guard reached.inStep else {
                        throw CrashError(.system, "a checker worker died outside a check (\(Self.wording(how)))")
                    }
                    let verdict: CheckVerdict
                    var note = ""
                    switch how {
                    case .timedOut: verdict = .timedOut(timeout)
                    case .crashed(let signal, _): verdict = .crashed(signal)
                    case .exited(let code):
                        verdict = .inconsistent(code)
                        note = "[the checker ended its worker process with exit status \(code)]\n"
                    case .answered, .completed:
                        throw CrashError(.system, "a checker worker answered a line, which it never does")
                    }
                    results.append(CheckResult(ordinal: reached.step, verdict: verdict,
                                               output: note + Self.workerOutput(layout: layout, share: job.share)))
                    checked += 1
                    diedInChecks += 1
                    return [Share(share: job.share, start: reached.step + 1)]
                },
                progress: { steps in progress(steps + diedInChecks) })
        } catch let e as CrashError {
            throw e
        } catch {
            throw CrashError(.system, "\(error)")
        }
        results.sort { $0.ordinal < $1.ordinal }
        return (results, checked)
    }

    private static func wording(_ how: WorkerPool.Outcome) -> String {
        switch how {
        case .crashed(let signal, _): "signal \(signal)"
        case .exited(let status): "status \(status)"
        default: how.reason
        }
    }

    /// A failure as a message: ordinal (8 bytes), verdict code (1), value (4), output.
    private static func encode(_ ordinal: Int64, _ verdict: CheckVerdict, _ output: String) -> [UInt8] {
        var record: [UInt8] = []
        withUnsafeBytes(of: ordinal) { record += $0 }
        record.append(verdict.code)
        withUnsafeBytes(of: verdict.value) { record += $0 }
        record += Array(output.utf8)
        return record
    }

    private static func decode(_ record: [UInt8]) -> CheckResult? {
        guard record.count >= 13 else { return nil }
        var ordinal: Int64 = 0, value: Int32 = 0
        withUnsafeMutableBytes(of: &ordinal) { $0.copyBytes(from: record[0..<8]) }
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: record[9..<13]) }
        return CheckResult(ordinal: ordinal, verdict: CheckVerdict(code: record[8], value: value),
                           output: String(decoding: record[13...], as: UTF8.self))
    }

    private static func outputPath(layout: ImageLayout, share: Int) -> String { layout.workDirectory + "/output-\(share)" }

    /// What a library checker printed before its worker died.
    private static func workerOutput(layout: ImageLayout, share: Int) -> String {
        let fd = open(outputPath(layout: layout, share: share), O_RDONLY | O_CLOEXEC)
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

    // MARK: in the worker

    private func work(_ job: Share, batch: [CutImages], mirror: [LineImage], worker: WorkerPool.BatchWorker) {
        let share = Int64(job.share), start = job.start, chunk = self.chunk, jobs = Int64(self.jobs)
        func mine(_ o: Int64) -> Bool { o >= start && (o / chunk) % jobs == share }
        if let function {
            // The library's output goes to a file, kept for images it fails.
            let path = Self.outputPath(layout: layout, share: job.share)
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
                    worker.begin(o)
                    let r = pointers.withUnsafeMutableBufferPointer { p in
                        lengths.withUnsafeMutableBufferPointer { l in function.function(p.baseAddress, l.baseAddress, p.count) }
                    }
                    worker.end()
                    fflush(nil)
                    let written = lseek(1, 0, SEEK_CUR)
                    if r != 0 {
                        let verdict: CheckVerdict = r == 125 ? .skipped : .inconsistent(r)
                        worker.send(Self.encode(o, verdict, Self.workerOutput(layout: layout, share: job.share)))
                    }
                    if written > 0 {
                        _ = ftruncate(1, 0)
                        _ = lseek(1, 0, SEEK_SET)
                    }
                }
            }
            return
        }
        guard let command else { _exit(6) }
        let clean = shareClean[job.share]
        guard let files = try? ImageFiles(layout: layout, slot: job.share, rebuild: !clean) else { _exit(5) }
        if !clean { for line in mirror { files.write(line) } }
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
                worker.begin(o)
                let (verdict, output) = command.run(imagePath: imagePath, cut: images.cut, event: event)
                worker.end()
                if verdict != .consistent { worker.send(Self.encode(o, verdict, output)) }
            }
            // Back to this cut's newest image, which the next batch starts from.
            for line in images.lines {
                for d in line.digits { files.write(images.digits[d], 0) }
            }
        }
    }
}
