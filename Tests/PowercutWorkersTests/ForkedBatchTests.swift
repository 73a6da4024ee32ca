import Testing
@testable import PowercutWorkers
#if canImport(Glibc)
import Glibc
#endif

/// A batch job: steps `from..<to` of a walk; step `failAt` misbehaves as `how` says.
struct Walk: Equatable {
    var from: Int64
    var to: Int64
}

enum Misbehaviour { case segv, exit(Int32), hang, exitZero }

/// Runs walks in forked workers; each step sends "step N"; misbehaving steps do as told.
/// A job that ends inside a step is resubmitted from the step after it, as a caller would.
func walk(_ batches: [Walk], jobs: Int = 2, timeout: Double = 5, bad: [Int64: Misbehaviour] = [:])
    throws -> (messages: [Int64], ends: [(Walk, WorkerPool.Outcome, WorkerPool.Progress)], steps: Int64) {
    let pool = try WorkerPool(forking: jobs, timeout: timeout)
    var messages: [Int64] = []
    var ends: [(Walk, WorkerPool.Outcome, WorkerPool.Progress)] = []
    var steps: Int64 = 0
    try pool.run(
        batches: batches,
        body: { job, worker in
            for s in job.from..<job.to {
                worker.begin(s)
                switch bad[s] {
                case .segv: kill(getpid(), SIGSEGV)
                case .exit(let status): exit(status)
                case .exitZero: exit(0)
                case .hang: sleep(60)
                case nil: break
                }
                worker.end()
                worker.send(Array("step \(s)".utf8))
            }
        },
        message: { _, bytes in messages.append(Int64(String(decoding: bytes.dropFirst(5), as: UTF8.self))!) },
        finished: { job, how, reached in
            ends.append((job, how, reached))
            return reached.inStep ? [Walk(from: reached.step + 1, to: job.to)] : []
        },
        progress: { steps = max(steps, $0) })
    return (messages.sorted(), ends, steps)
}

@Suite struct ForkedBatchTests {
    @Test func everyStepOfEveryBatchRunsAndItsMessagesArrive() throws {
        let r = try walk([Walk(from: 0, to: 50), Walk(from: 50, to: 100), Walk(from: 100, to: 120)])
        #expect(r.messages == Array(0..<120))
        #expect(r.ends.count == 3 && r.ends.allSatisfy { $0.1 == .completed && !$0.2.inStep })
        #expect(r.ends.map(\.2.completed).reduce(0, +) == 120)
        #expect(r.steps == 120)
    }

    @Test func aJobThatCrashesMidBatchSaysInWhichStepAndTheRestIsResubmitted() throws {
        let r = try walk([Walk(from: 0, to: 10)], jobs: 1, bad: [3: .segv, 7: .exit(9)])
        // Steps before the crash kept their messages; the failing steps sent none.
        #expect(r.messages == [0, 1, 2, 4, 5, 6, 8, 9])
        #expect(r.ends.map(\.0) == [Walk(from: 0, to: 10), Walk(from: 4, to: 10), Walk(from: 8, to: 10)])
        #expect(r.ends.map(\.1) == [.crashed(signal: SIGSEGV, name: "SIGSEGV"), .exited(status: 9), .completed])
        #expect(r.ends.map(\.2) == [
            WorkerPool.Progress(step: 3, inStep: true, completed: 3),
            WorkerPool.Progress(step: 7, inStep: true, completed: 3),
            WorkerPool.Progress(step: 9, inStep: false, completed: 2),
        ])
    }

    @Test func aStepPastTheLimitIsKilledAndTheWalkResumesAfterIt() throws {
        let r = try walk([Walk(from: 0, to: 6)], jobs: 1, timeout: 1, bad: [2: .hang])
        #expect(r.messages == [0, 1, 3, 4, 5])
        #expect(r.ends.map(\.1) == [.timedOut(seconds: 1), .completed])
        #expect(r.ends[0].2 == WorkerPool.Progress(step: 2, inStep: true, completed: 2))
        #expect(r.ends[0].1.reason == "ran longer than 1 s")
    }

    @Test func anExitWithStatusZeroInAStepIsNotACompletion() throws {
        let r = try walk([Walk(from: 0, to: 3)], jobs: 1, bad: [1: .exitZero])
        #expect(r.ends.map(\.1) == [.exited(status: 0), .completed])
        #expect(r.messages == [0, 2])
    }

    @Test func theChildSeesTheParentsMemoryAndMessagesCarryAnyBytes() throws {
        let pool = try WorkerPool(forking: 2, timeout: 5)
        // Set after the pool was made: the child gets it at the fork, not through a pipe.
        let table = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var received: [[UInt8]] = []
        var slots = Set<Int>()
        try pool.run(
            batches: [0, 1, 2, 3],
            body: { job, worker in
                worker.send([0x0A, 0x5C, 0x6E, 0x5C] + table[(job * 10)..<(job * 10 + 10)] + [0x0A])
                worker.send(Array("slot \(worker.slot)".utf8))
            },
            message: { job, bytes in
                if bytes.starts(with: Array("slot ".utf8)) {
                    slots.insert(Int(String(decoding: bytes.dropFirst(5), as: UTF8.self))!)
                } else {
                    received.append(bytes)
                }
            },
            finished: { _, how, _ in
                #expect(how == .completed)
                return []
            })
        let expected = (0..<4).map { j in [0x0A, 0x5C, 0x6E, 0x5C] + Array(table[(j * 10)..<(j * 10 + 10)]) + [0x0A] }
        #expect(received.sorted { $0.lexicographicallyPrecedes($1) } == expected.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(slots.isSubset(of: [0, 1]))
    }
}
