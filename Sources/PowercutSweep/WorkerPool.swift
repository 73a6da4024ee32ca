import Foundation
@_exported import PowercutWorkers

// A sweep over the shared worker pool: one case per job. A worker reads `DST SRC SIZE`
// lines and answers each with one `CaseResult` as a JSON line; a worker that dies
// mid-case makes that case `crashed`, one past the time limit `budget`.

extension WorkerPool {
    /// A pool for sweep workers; `caseTimeout` is the wall-clock limit per case, in
    /// seconds (the recorder's instruction budget is the first line of defence; this
    /// catches a routine stuck in a system call).
    public convenience init(executable: String, arguments: [String], jobs: Int, caseTimeout: Double) {
        self.init(executable: executable, arguments: arguments, jobs: jobs, timeout: caseTimeout)
    }

    /// Runs every case; `progress(done, total)` after each. Results come back in grid order.
    public func run(_ cases: [SweepCase], progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseResult] {
        let decoder = JSONDecoder()
        func decode(_ line: [UInt8]) -> CaseResult? { try? decoder.decode(CaseResult.self, from: Data(line)) }
        let requests = cases.map { Array("\($0.dstOffset) \($0.srcOffset) \($0.size)".utf8) }
        let outcomes = try run(requests,
                               accept: { j, line in decode(line)?.sweepCase == cases[j] },
                               // A worker exits after an abandoned call (its state is unknown).
                               retire: { _, line in decode(line).map { $0.status == .budget || $0.status == .error } ?? true },
                               progress: progress)
        let results = zip(cases, outcomes).map { c, o -> CaseResult in
            switch o {
            case .answered(let line):
                return decode(line) ?? CaseResult(case: c, status: .crashed, message: "the worker's answer could not be read")
            case .completed:
                // Only forked jobs complete without an answer; a sweep's workers are exec'd.
                return CaseResult(case: c, status: .crashed, message: "the worker gave no answer")
            case .crashed(let signal, _):
                return CaseResult(case: c, status: .crashed,
                                  message: "the routine crashed the worker: killed by signal \(signal) (\(String(cString: strsignal(signal))))")
            case .exited(let status):
                return CaseResult(case: c, status: .crashed, message: "the routine crashed the worker: worker exited with status \(status)")
            case .timedOut(let seconds):
                return CaseResult(case: c, status: .budget, message: "ran longer than \(Int(seconds)) s")
            }
        }
        return results.sorted { $0.sweepCase < $1.sweepCase }
    }
}
