import Foundation
import Testing

/// `check a b c` replays the traces on several threads and prints what a sequential run
/// prints, in argument order; `--cuts` and per-op JUnit stream through spools, so long
/// traces give the same report without holding it.
@Suite struct CheckSeveralFilesTests {
    let traces = ["Traces/adr-tail-not-written-back.pct", "Traces/adr-example-clean.pct", "Traces/contract-none.pct",
                  "Traces/adr-example-clean-binary.pctb", "Traces/thread-missing-drain.pct", "Traces/wpq-missing-hint.pct",
                  "Traces/adr-redundant-flush.pct"]

    @Test func everyJobCountGivesTheSequentialReport() throws {
        for format in ["text", "json", "brief", "sarif", "junit", "github"] {
            let args = ["check", "--no-symbols", "--format", format, "--cuts"]
            let one = try powercut(args + ["--jobs", "1"] + traces)
            #expect(one.status == 1, "\(format): the failing trace fails the run")
            for jobs in [["--jobs", "2"], ["--jobs", "5"], []] {
                let many = try powercut(args + jobs + traces)
                #expect(many.status == one.status && many.stdout == one.stdout && many.stderr == one.stderr, "\(format) \(jobs)")
            }
        }
        // Argument order, not completion order: the long trace first still comes first.
        let text = try powercut(["check", "--no-symbols", "--jobs", "3"] + traces).stdout
        let heads = text.split(separator: "\n").filter { $0.hasPrefix("== ") && $0.contains(" events, ") }
        #expect(heads.map { String($0.dropFirst(3).prefix { $0 != ":" }) } == traces)
    }

    @Test func theFirstBadTraceInArgumentOrderDecides() throws {
        let s = Scratch()
        let bad = try s.write("bad.pct", "powercut-trace 1\nstore 0x10 zz\n")
        let worse = try s.write("worse.pct", "not a trace\n")
        for jobs in ["1", "2", "4"] {
            let run = try powercut(["check", "--jobs", jobs, traces[0], bad, traces[1], worse])
            #expect(run.status == 65, "jobs \(jobs)")
            #expect(run.stdout.isEmpty, "no partial report (jobs \(jobs))")
            #expect(run.stderr.hasPrefix("powercut: \(bad)"), "jobs \(jobs): \(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1)
        }
        let zero = try powercut(["check", "--jobs", "0", traces[0]])
        #expect(zero.status == 64 && zero.stderr.contains("--jobs 0 is out of range"))
    }

    /// A text trace of `ops` persist ops, one 8-byte store each, written back and fenced
    /// except every `badEvery`-th (0: none), which returns with its store dirty.
    func manyOps(_ ops: Int, badEvery: Int) -> String {
        var t = "powercut-trace 1\npmem 0x100000 0x1000000\n"
        for k in 1...ops {
            let a = 0x100000 + (k % 100_000) * 64
            let addr = "0x" + String(a, radix: 16)
            t += "op \(k) begin dst=\(addr) len=8 contract=persist\nstore \(addr) 8\n"
            if badEvery == 0 || k % badEvery != 0 { t += "clwb \(addr)\nsfence\n" }
            t += "op \(k) end\n"
        }
        return t
    }

    @Test func aLongCutSeriesIsTheSameStreamedAsKept() throws {
        // 40 k ops, 200 k events: rows well past the spool's 1 MiB in memory.
        let s = Scratch()
        let file = try s.write("long.pct", manyOps(40_000, badEvery: 0))
        let text = try powercut(["check", "--cuts", file])
        #expect(text.status == 0)
        let rows = text.stdout.split(separator: "\n").drop { !$0.hasPrefix("cut ") }.dropFirst().prefix { $0.first?.isNumber == true }
        #expect(rows.count == 200_001)
        #expect(rows.first == "0             0         0         0         0         0")
        #expect(rows.dropFirst(2).first == "2             8         0         0         0         8")
        #expect(rows.last.map(String.init) == "200000 " + String(repeating: "         0", count: 5))
        let json = try powercut(["check", "--cuts", "--format", "json", file])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let cuts = try #require(((doc["traces"] as? [[String: Any]])?.first)?["cuts"] as? [[String: Any]])
        #expect(cuts.count == 200_001)
        #expect(cuts.enumerated().allSatisfy { $0.element["cut"] as? Int == $0.offset })
        #expect(cuts[2]["dirty"] as? Int == 8 && cuts[3]["flushing"] as? Int == 8 && cuts[4]["dirty"] as? Int == 0)
    }

    @Test func junitListsEveryOpInOrderWithoutKeepingThem() throws {
        // 40 k ops: records well past the spool's 1 MiB in memory; every 1000th fails.
        let s = Scratch()
        let file = try s.write("ops.pct", manyOps(40_000, badEvery: 1000))
        let run = try powercut(["check", "--format", "junit", file])
        #expect(run.status == 1)
        #expect(run.stdout.contains("<testsuites name=\"powercut\" tests=\"40000\" failures=\"40\" errors=\"0\" skipped=\"0\">"))
        let names = run.stdout.split(separator: "\n").compactMap { line -> Int? in
            guard let r = line.range(of: "name=\"op ") else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
        #expect(names == Array(1...40_000))
        let failures = run.stdout.components(separatedBy: "<failure type=\"not-durable\"").count - 1
        #expect(failures == 40)
    }

    @Test func junitOverManyTracesKeepsOneSpoolFileNotOnePerTrace() throws {
        // 12 traces of 33 k ops each: every trace's op records pass the 1 MiB a spool
        // keeps in memory. With 16 open files allowed, a spool file per trace ran out
        // ("Too many open files", exit 70); the run's one op log does not.
        let s = Scratch()
        let file = try s.write("ops.pct", manyOps(33_000, badEvery: 0))
        let out = s.path("report.xml")
        let run = try runProgram("/bin/sh", ["-c", "ulimit -n 16 && exec \"$0\" \"$@\"", powercutBinary, "check",
                                             "--format", "junit", "--jobs", "2", "-o", out] + Array(repeating: file, count: 12))
        #expect(run.status == 0, "\(run.stderr)")
        let head = try #require(FileHandle(forReadingAtPath: out)).readData(ofLength: 200)
        #expect(String(decoding: head, as: UTF8.self).contains("<testsuites name=\"powercut\" tests=\"396000\" failures=\"0\""))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full")))
    func aStreamedReportOnAFullStandardOutputIsOneLineAndExit70() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: powercutBinary)
        p.arguments = ["check", "--cuts", "--jobs", "2", traces[0], traces[1]]
        p.currentDirectoryURL = packageRoot
        let s = Scratch()
        FileManager.default.createFile(atPath: s.path("err"), contents: nil)
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: s.path("err")))
        p.standardOutput = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        try err.close()
        #expect(p.terminationStatus == 70)
        #expect((try? String(contentsOfFile: s.path("err"), encoding: .utf8)) == "powercut: cannot write to standard output: No space left on device\n")
    }
}
