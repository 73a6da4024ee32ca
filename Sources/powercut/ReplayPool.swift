import Foundation

/// Runs `work` on items 0..<count on up to `jobs` threads and hands the results to
/// `consume` on the calling thread in item order, so output is the same whatever the
/// number of jobs. At most `jobs + 1` items are started past the one being consumed:
/// finished results never pile up ahead of the printer. An item whose work throws is
/// consumed as that error, in its turn: the first failing item in order wins, as in a
/// sequential run; items after it are not started, and `work` may give up early when
/// the `stop` it is passed says so.
final class ReplayPool<Output>: @unchecked Sendable {
    private let count: Int
    private let jobs: Int
    private let work: (_ item: Int, _ stop: () -> Bool) throws -> Output
    private let lock = NSCondition()
    private var started = 0
    private var consumed = 0
    private var running = 0
    private var stopped = false
    private var results: [Int: Result<Output, any Error>] = [:]

    init(count: Int, jobs: Int, work: @escaping (_ item: Int, _ stop: () -> Bool) throws -> Output) {
        self.count = count
        self.jobs = max(1, min(jobs, count))
        self.work = work
    }

    /// Whether the run stopped (an earlier item failed): long work may give up.
    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    func run(consume: (Int, Output) throws -> Void) throws {
        if jobs == 1 {
            for i in 0..<count { try consume(i, try work(i, { false })) }
            return
        }
        lock.lock()
        running = jobs
        lock.unlock()
        for _ in 0..<jobs {
            let t = Thread { [self] in worker() }
            t.stackSize = 16 << 20
            t.start()
        }
        // Whatever happens, wait for the workers: nothing of theirs outlives the run.
        defer {
            lock.lock()
            stopped = true
            lock.broadcast()
            while running > 0 { lock.wait() }
            lock.unlock()
        }
        for i in 0..<count {
            lock.lock()
            while results[i] == nil { lock.wait() }
            let r = results.removeValue(forKey: i)!
            consumed = i + 1
            if case .failure = r { stopped = true }
            lock.broadcast()
            lock.unlock()
            try consume(i, try r.get())
        }
    }

    private func worker() {
        lock.lock()
        while true {
            while !stopped && started < count && started > consumed + jobs { lock.wait() }
            if stopped || started >= count { break }
            let i = started
            started += 1
            lock.unlock()
            let r = Result { try work(i, { [self] in isStopped }) }
            lock.lock()
            results[i] = r
            lock.broadcast()
        }
        running -= 1
        lock.broadcast()
        lock.unlock()
    }
}
