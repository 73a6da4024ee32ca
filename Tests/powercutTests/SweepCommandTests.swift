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
