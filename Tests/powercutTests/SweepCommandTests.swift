import Foundation
import Testing

/// Sweeps through the built binary (worker processes and all). The failing sets are
/// worked out by hand from what each reference subject does (README, "Recording one call").
@Suite struct SweepCommandTests {
    func failingCases(_ json: String) throws -> [String: Set<[Int]>] {
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        var out: [String: Set<[Int]>] = [:]
        for r in doc["routines"] as! [[String: Any]] {
            let cases = (r["failingCases"] as! [[String: Any]]).map { [$0["dstOffset"] as! Int, $0["size"] as! Int] }
            out[r["routine"] as! String] = Set(cases)
        }
        return out
    }

    @Test func theHistoricalBugsAreFoundExactlyWhereTheyAre() throws {
        let run = try powercut(["sweep", "copy_user_flushcache_2017", "memcpy_to_pmem_2015", "copy_user_flushcache_2020",
                                "--sizes", "0-16", "--format", "json", "--quiet"])
        #expect(run.status == 1, "\(run.stderr)")
        let failing = try failingCases(run.stdout)
        // 2017: the first-line write-back (n < 8: line(d) only) strands the bytes past
        // the line boundary exactly when a short copy crosses it: n < 8, d + n > 64.
        var expected2017 = Set<[Int]>()
        for d in 0..<64 { for n in 0...16 where n < 8 && d + n > 64 { expected2017.insert([d, n]) } }
        #expect(failing["copy_user_flushcache_2017"] == expected2017)
        #expect(expected2017.count == 21)
        // 2015: no write-back at all, so any cached byte is lost: every copy but the
        // empty one and those that are all movnti (n >= 8, d and n multiples of 8).
        var expected2015 = Set<[Int]>()
        for d in 0..<64 { for n in 1...16 where !(n >= 8 && d % 8 == 0 && n % 8 == 0) { expected2015.insert([d, n]) } }
        #expect(failing["memcpy_to_pmem_2015"] == expected2015)
        #expect(failing["copy_user_flushcache_2020"] == [])
    }

    @Test func blockSteppingFindsExactlyWhatSteppingEachInstructionFinds() throws {
        let args = ["sweep", "copy_user_flushcache_2017", "memcpy_to_pmem_2015", "--sizes", "0-16", "--format", "json", "--quiet"]
        let each = try powercut(args, environment: ["POWERCUT_BLOCK_STEP": "0"])
        let blocks = try powercut(args)
        #expect(each.status == 1 && blocks.status == 1)
        #expect(try failingCases(each.stdout) == failingCases(blocks.stdout))
        #expect(try failingCases(blocks.stdout)["copy_user_flushcache_2017"]?.count == 21)
    }

    @Test func theCorrectSubjectsAreCleanOverTheDefaultGrid() throws {
        let run = try powercut(["sweep", "copy_user_flushcache_2020", "copy_user_flushcache_2023", "memcpy_flushcache",
                                "memcpy_flushcache_const", "--quiet"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("4 routines, 68096 cases: 0 routines with failing cases, 0 failing cases"))
    }

    @Test func libpmemPersistIsCleanOverTheDefaultGrid() throws {
        let run = try powercut(["sweep", "--lib", "libpmem.so.1", "--symbol", "pmem_memcpy_persist", "--contract", "persist", "--quiet"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("pmem_memcpy_persist  clean   all 17024 cases durable"))
    }

    @Test func libpmemEnvironmentSwitchesPassThrough() throws {
        // PMEM_NO_FLUSH=1 makes libpmem skip its write-backs: cached heads and tails
        // are then at risk, and the sweep must say so.
        let run = try powercut(["sweep", "--lib", "libpmem.so.1", "--symbol", "pmem_memcpy_persist", "--contract", "persist",
                                "--sizes", "1-9", "--dst-offsets", "0-7", "--quiet"], environment: ["PMEM_NO_FLUSH": "1"])
        #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
    }

    @Test func failingCasesAreSavedAndCheckGivesTheSameVerdict() throws {
        let s = Scratch()
        let run = try powercut(["sweep", "copy_user_flushcache_2017", "--dst-offsets", "62", "--sizes", "4",
                                "--save-failing", s.path("failing"), "--heatmap", s.path("map.svg"), "--quiet"])
        #expect(run.status == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: s.path("failing"))
        #expect(files == ["copy_user_flushcache_2017-dst62-src0-n4.pct"])
        let check = try powercut(["check", "--format", "brief", s.path("failing/" + files[0])])
        #expect(check.status == 1 && check.stdout.contains("not-durable") && check.stdout.contains("tail dirty"))
        let svg = try String(contentsOfFile: s.path("map.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("copy_user_flushcache_2017: 1 failing"))
    }

    @Test func usageErrors() throws {
        #expect(try powercut(["sweep", "no_such_subject"]).status == 64)
        #expect(try powercut(["sweep", "--lib", "/no/such.so", "--symbol", "f"]).status == 64)
        #expect(try powercut(["sweep", "--lib", "libpmem.so.1", "--symbol", "nope"]).status == 64)
        #expect(try powercut(["sweep", "--sizes", "9-1"]).status == 64)
        #expect(try powercut(["sweep", "--symbol", "f"]).status == 64)
        let run = try powercut(["sweep", "--lib", "libpmem.so.1", "--symbol", "nope"])
        #expect(run.stderr == "powercut: libpmem.so.1 has no symbol 'nope' (list its exported functions with: nm -D --defined-only libpmem.so.1)\n")
    }

    @Test func recordWritesATraceThatChecksAsHandWorked() throws {
        let s = Scratch()
        let run = try powercut(["record", "copy_user_flushcache_2017", "--dst-offset", "62", "--len", "4", "-o", s.path("t.pctb")])
        #expect(run.status == 0, "\(run.stderr)")
        let check = try powercut(["check", "--format", "brief", s.path("t.pctb")])
        #expect(check.status == 1)
        #expect(check.stdout.contains(" tail dirty store=#2"))
        #expect(!FileManager.default.fileExists(atPath: s.path("t.pctb.incomplete")))
    }
}

/// Misbehaving routines and bad options cost one line each, never the sweep.
@Suite struct SweepIsolationTests {
    func sweep(_ symbol: String, lib: String = "routines", _ extra: [String]) throws -> Run {
        try powercut(["sweep", "--lib", try MisbehavingRoutines.library(lib), "--symbol", symbol] + extra)
    }

    @Test func aConstructorThatExitsOrCrashesIsOneLineNotAnEmptySuccess() throws {
        for (lib, words) in [("constructorExits", "ended the process with exit status 0"), ("constructorCrashes", "killed by SIGSEGV")] {
            let run = try sweep("copy", lib: lib, ["--sizes", "0-3", "--dst-offsets", "0"])
            #expect(run.status == 65, "\(lib): \(run.stdout)\(run.stderr)")
            #expect(run.stdout.isEmpty)
            #expect(run.stderr.contains("cannot sweep copy: loading") && run.stderr.contains(words), "\(run.stderr)")
            #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        }
    }

    @Test func crashedCasesAreOneLineEachWithTheRealSignalAndNoneWhenQuiet() throws {
        let grid = ["--sizes", "4-6", "--dst-offsets", "0-2", "--format", "json"]
        let loud = try sweep("crashes_at_5", grid)
        #expect(loud.status == 1)
        let crashLines = loud.stderr.split(separator: "\n").filter { $0.contains("crashed") }
        #expect(crashLines.count == 3, "\(loud.stderr)")
        #expect(crashLines.allSatisfy { $0.lowercased().contains("segmentation fault") }, "\(loud.stderr)")
        let other = loud.stderr.split(separator: "\n").filter { !$0.contains("crashed") && !$0.contains("% )") && !$0.contains("cases (") }
        #expect(other.isEmpty, "not one line per case: \(other)")
        let quiet = try sweep("aborts_at_5", grid + ["--quiet"])
        #expect(quiet.status == 1)
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(quiet.stdout.utf8)) as! [String: Any]
        let cases = ((doc["routines"] as! [[String: Any]])[0]["failingCases"] as! [[String: Any]]).filter { $0["status"] as? String == "crashed" }
        #expect(cases.count == 3)
        #expect(cases.allSatisfy { ($0["message"] as! String).lowercased().contains("abort") }, "\(cases)")
    }

    @Test func aTimeoutIsATimeout() throws {
        let run = try sweep("sleeps", ["--sizes", "4", "--dst-offsets", "0", "--timeout", "0.5", "--format", "json", "--quiet"])
        #expect(run.status == 1)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let c = ((doc["routines"] as! [[String: Any]])[0]["failingCases"] as! [[String: Any]])[0]
        #expect(c["status"] as? String == "timeout", "\(c)")
    }

    @Test func optionsThatCannotWorkAreRejectedBeforeAnyWork() throws {
        for t in ["0", "nan", "inf", "1e300"] {
            let run = try powercut(["sweep", "memcpy_flushcache", "--timeout", t])
            #expect(run.status == 64 && run.stdout.isEmpty, "--timeout \(t)")
        }
        let s = Scratch()
        let run = try powercut(["sweep", "memcpy_flushcache", "--heatmap", s.path("missing/map.svg")])
        #expect(run.status == 64)
        #expect(run.stdout.isEmpty, "the sweep ran: \(run.stdout)")
        #expect(run.stderr.contains("missing") && run.stderr.contains("does not exist"))
        #expect(try powercut(["sweep", "memcpy_flushcache", "-o", s.path("missing/report.txt")]).status == 64)
    }

    @Test func bytesAtRiskComeFromTheModelsCountNotTheListedRanges() throws {
        // No drain after a 4097-byte copy: every byte is at risk, in more ranges than a
        // finding lists by default.
        let run = try powercut(["sweep", "memcpy_flushcache", "--drain", "none", "--dst-offsets", "0", "--sizes", "4097",
                                "--format", "json", "--quiet"])
        #expect(run.status == 1)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let r = (doc["routines"] as! [[String: Any]])[0]
        #expect(r["bytesAtRisk"] as? Int == 4097)
        #expect((r["failingCases"] as! [[String: Any]])[0]["bytesAtRisk"] as? Int == 4097)
        #expect((r["atRisk"] as! [String: Int]).values.reduce(0, +) == 4097)
    }
}

/// A harness library's powercut_case adapts a routine of any signature to the sweep.
@Suite struct SweepHarnessTests {
    @Test func aHarnessEntryPointIsSweptLikeARoutine() throws {
        let lib = try MisbehavingRoutines.library("routines")
        let run = try powercut(["sweep", "--harness", lib, "--dst-offsets", "0-1", "--sizes", "0-2", "--format", "json", "--quiet"])
        #expect(run.status == 1, "\(run.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let r = (doc["routines"] as! [[String: Any]])[0]
        #expect(r["routine"] as? String == "routines")  // named after libroutines.so
        // memcpy with no write-back: every non-empty copy leaves its bytes dirty.
        let failing = (r["failingCases"] as! [[String: Any]]).map { [$0["dstOffset"] as! Int, $0["size"] as! Int] }
        #expect(Set(failing) == [[0, 1], [0, 2], [1, 1], [1, 2]])
        #expect(try powercut(["sweep", "--harness", lib, "--lib", lib]).status == 64)
    }
}
