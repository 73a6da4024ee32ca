import Testing
@testable import PowercutWorkers
#if canImport(Glibc)
import Glibc
#endif

/// A worker as a shell loop: answers `ok X` to X, and misbehaves on request.
let script = """
    while read -r job; do
      case "$job" in
        segv) kill -SEGV $$ ;;
        exit) exit 3 ;;
        hang) exec sleep 60 ;;
        noisy) echo "not an answer"; echo "ok noisy" ;;
        *) echo "ok $job" ;;
      esac
    done
    """

@Suite struct WorkerPoolTests {
    func run(_ jobs: [String], workers: Int = 2, timeout: Double = 2) throws -> [WorkerPool.Outcome] {
        let pool = WorkerPool(executable: "/bin/sh", arguments: ["-c", script], jobs: workers, timeout: timeout)
        return try pool.run(jobs.map { Array($0.utf8) }, accept: { _, line in line.starts(with: Array("ok ".utf8)) })
    }

    @Test func eachJobGetsItsAnswerInJobOrder() throws {
        let jobs = (0..<20).map { "job\($0)" }
        let outcomes = try run(jobs, workers: 3)
        #expect(outcomes == jobs.map { .answered(Array("ok \($0)".utf8)) })
    }

    @Test func aCrashAnExitOrAHangCostsOneJobWithItsReason() throws {
        let outcomes = try run(["a", "segv", "b", "exit", "hang", "noisy", "c"], timeout: 1)
        #expect(outcomes == [
            .answered(Array("ok a".utf8)),
            .crashed(signal: SIGSEGV, name: "SIGSEGV"),
            .answered(Array("ok b".utf8)),
            .exited(status: 3),
            .timedOut(seconds: 1),
            .answered(Array("ok noisy".utf8)),
            .answered(Array("ok c".utf8)),
        ])
        #expect(outcomes[1].reason == "killed by SIGSEGV (signal 11)")
        #expect(outcomes[3].reason == "exited with status 3")
        #expect(outcomes[4].reason == "ran longer than 1 s")
    }

    @Test func aWorkerThatCannotStartIsAnError() {
        let pool = WorkerPool(executable: "/nonexistent/worker", arguments: [], jobs: 1)
        #expect(throws: WorkerPool.SpawnError.self) { _ = try pool.run([Array("x".utf8)]) }
    }
}
