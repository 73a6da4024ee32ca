import Foundation
import PowercutTrace
import Testing

/// `powercut crash` end to end, with checkers a user would write.
@Suite struct CrashCommandTests {
    /// A log writer: a 16-byte record in one line, then a commit word in another.
    /// `fence` says whether the record is made durable before the commit is stored.
    static func logWriter(fence: Bool) -> String {
        """
        powercut-trace 1
        pmem 0x1000 0x100 name=log
        store 0x1000 8 data=1111111111111111
        store 0x1008 8 data=2222222222222222
        clwb 0x1000
        \(fence ? "sfence\n" : "")store 0x1040 8 data=0100000000000000
        clwb 0x1040
        sfence

        """
    }

    /// "commit set ⇒ record intact", as a shell script.
    static let checkScript = """
        f="$1"
        c=$(od -An -tx1 -j64 -N1 "$f" | tr -d ' ')
        if [ "$c" = "01" ]; then
          r=$(od -An -tx1 -N16 "$f" | tr -d ' \\n')
          [ "$r" = "11111111111111112222222222222222" ] || { echo "commit set, record torn: $r"; exit 1; }
        fi
        exit 0

        """

    /// The same rule as a library checker, and checkers that misbehave.
    static let checkLibrary = """
        #include <stddef.h>
        #include <stdio.h>
        #include <string.h>
        #include <stdlib.h>
        static int torn(const unsigned char *p) {
            static const unsigned char want[16] = {0x11,0x11,0x11,0x11,0x11,0x11,0x11,0x11,
                                                   0x22,0x22,0x22,0x22,0x22,0x22,0x22,0x22};
            return p[64] == 1 && memcmp(p, want, 16) != 0;
        }
        int check(const void *const images[], const size_t lengths[], size_t count) {
            if (count != 1 || lengths[0] != 256) return 2;
            if (torn(images[0])) { printf("commit set, record torn\\n"); return 1; }
            return 0;
        }
        int crashes(const void *const images[], const size_t lengths[], size_t count) {
            if (torn(images[0])) *(volatile int *)0 = 1;
            return 0;
        }
        int hangs(const void *const images[], const size_t lengths[], size_t count) {
            if (torn(images[0])) for (;;) {}
            return 0;
        }
        int cannot_tell(const void *const images[], const size_t lengths[], size_t count) { return 125; }
        int chatty(const void *const images[], const size_t lengths[], size_t count) {
            for (int i = 0; i < 100000; i++) printf("line %d of a lot of output\\n", i);
            return torn(images[0]);
        }

        """

    func compileLibrary(_ scratch: Scratch) throws -> String {
        let source = try scratch.write("checker.c", Self.checkLibrary)
        let lib = scratch.path("libchecker.so")
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        cc.arguments = ["-shared", "-fPIC", "-O1", "-o", lib, source]
        try cc.run()
        cc.waitUntilExit()
        #expect(cc.terminationStatus == 0)
        return lib
    }

    @Test func aLogWriterMissingItsFenceIsFlaggedByACommandChecker() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let script = try s.write("check.sh", Self.checkScript)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--save-images", s.path("saved")])
        #expect(r.status == 1)
        #expect(r.stdout.contains("inconsistent image 1 at cut 5 (after #4 clwb, before #5 sfence): the checker returned 1"))
        #expect(r.stdout.contains("persisted #0 store 0x1000..0x1007 (8 bytes)"))
        #expect(r.stdout.contains("lost      #1 store 0x1008..0x100f (8 bytes)"))
        #expect(r.stdout.contains("| commit set, record torn: 11111111111111110000000000000000"))
        #expect(r.stdout.contains("image saved: \(s.path("saved"))/cut5-image1.img"))
        #expect(r.stdout.contains("powercut: 2 inconsistent images; checked 6 of 7 images at 2 cuts (1 already checked at the cut before): every image"))
        // The saved image fails the checker when rerun by hand.
        let saved = try Data(contentsOf: URL(fileURLWithPath: s.path("saved") + "/cut5-image1.img"))
        #expect(saved.count == 256 && saved[64] == 1 && saved[8] == 0)
    }

    @Test func aSavedImageOfALargePoolIsSparse() throws {
        let s = Scratch()
        // The same writer in a 256 MiB pool: the saved image is the pool's length, and
        // only the lines written take disk.
        let trace = try s.write("log.pct", Self.logWriter(fence: false).replacingOccurrences(of: "pmem 0x1000 0x100", with: "pmem 0x1000 0x10000000"))
        let script = try s.write("check.sh", Self.checkScript)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--save-images", s.path("saved")])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        var st = stat()
        #expect(stat(s.path("saved") + "/cut5-image1.img", &st) == 0)
        #expect(st.st_size == 0x10000000)
        #expect(Int(st.st_blocks) * 512 <= 1 << 20, "\(st.st_blocks) blocks allocated")
    }

    @Test func theFixedWriterIsClean() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: true))
        let script = try s.write("check.sh", Self.checkScript)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)"])
        #expect(r.status == 0)
        #expect(r.stdout.hasSuffix("powercut: 0 inconsistent images; checked 4 of 6 images at 3 cuts (2 already checked at the cut before): every image\n"))
    }

    @Test func aLibraryCheckerFindsTheSameImages() throws {
        let s = Scratch()
        let lib = try compileLibrary(s)
        let bad = try s.write("bad.pct", Self.logWriter(fence: false))
        let good = try s.write("good.pct", Self.logWriter(fence: true))
        let r = try powercut(["crash", bad, "--check-lib", lib, "--check-fn", "check", "--jobs", "2"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("inconsistent image 1 at cut 5"))
        #expect(r.stdout.contains("| commit set, record torn"))
        let ok = try powercut(["crash", good, "--check-lib", lib, "--check-fn", "check"])
        #expect(ok.status == 0)
    }

    @Test func aPMDKStyleCopyWithNonTemporalBodyThenItsCommitIsClean() throws {
        // Cached head written back, non-temporal body and tail, one sfence, then the commit word.
        let trace = """
            powercut-trace 1
            pmem 0x1000 0x100 name=log
            store 0x1000 4 data=11111111
            clwb 0x1000
            ntstore 0x1004 4 data=11111111
            ntstore 0x1008 8 data=2222222222222222
            sfence
            store 0x1040 8 data=0100000000000000
            clwb 0x1040
            sfence

            """
        let s = Scratch()
        let path = try s.write("pmdk.pct", trace)
        let script = try s.write("check.sh", Self.checkScript)
        let r = try powercut(["crash", path, "--check-cmd", "sh \(script)"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains(": every image"))
        let counts = try powercut(["crash", path, "--count"])
        // Before the first fence: head 2 x body 2 x tail 2 contents.
        #expect(counts.stdout.hasPrefix("cut 4 (after #3 ntstore, before #4 sfence): 8 images\n"))
    }

    @Test func aCommitStoredBeforeItsRecordIsWrittenBackIsFound() throws {
        // The commit word can be evicted (persist early) before the record's write-back is fenced.
        let trace = """
            powercut-trace 1
            pmem 0x1000 0x100 name=log
            store 0x1000 8 data=1111111111111111
            store 0x1008 8 data=2222222222222222
            store 0x1040 8 data=0100000000000000
            clwb 0x1000
            sfence
            clwb 0x1040
            sfence

            """
        let s = Scratch()
        let path = try s.write("early.pct", trace)
        let script = try s.write("check.sh", Self.checkScript)
        let r = try powercut(["crash", path, "--check-cmd", "sh \(script)", "--report-all", "--save-images", s.path("saved")])
        #expect(r.status == 1)
        // Only lines off their newest content are listed: the commit line persisted whole.
        #expect(r.stdout.contains("inconsistent image 1 at cut 4 (after #3 clwb, before #4 sfence)"))
        #expect(r.stdout.contains("inconsistent image 2 at cut 4 (after #3 clwb, before #4 sfence)"))
        #expect(!r.stdout.contains("line 0x1040"))
        let saved = try Data(contentsOf: URL(fileURLWithPath: s.path("saved") + "/cut4-image2.img"))
        #expect(saved[64] == 1 && saved[0] == 0 && saved[8] == 0)
    }

    @Test func checkersThatCrashHangSkipOrPrintALotAreHandled() throws {
        let s = Scratch()
        let lib = try compileLibrary(s)
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let crash = try powercut(["crash", trace, "--check-lib", lib, "--check-fn", "crashes"])
        #expect(crash.status == 1)
        #expect(crash.stdout.contains("the checker crashed: signal 11"))
        #expect(crash.stdout.contains("powercut: 2 inconsistent images (2 crashed); checked 6 of 7"))

        let hang = try powercut(["crash", trace, "--check-lib", lib, "--check-fn", "hangs", "--timeout", "0.5"])
        #expect(hang.status == 1)
        #expect(hang.stdout.contains("the checker timed out after 0.5 s (killed)"))
        #expect(hang.stdout.contains("(2 timed out)"))

        let skip = try powercut(["crash", trace, "--check-lib", lib, "--check-fn", "cannot_tell"])
        #expect(skip.status == 0)
        #expect(skip.stdout.contains("6 skipped by the checker (status 125)"))

        let chatty = try powercut(["crash", trace, "--check-lib", lib, "--check-fn", "chatty"])
        #expect(chatty.status == 1)
        #expect(chatty.stdout.contains("| line 0 of a lot of output"))
        #expect(!chatty.stdout.contains("line 99999 of"))
        #expect(chatty.stdout.contains("more bytes of output not kept]"))

        // The same through the shell.
        let script = try s.write("misbehave.sh", """
            case "$POWERCUT_CUT:$(od -An -tx1 -j64 -N1 "$1" | tr -d ' ')" in
              5:01) if [ "$(od -An -tx1 -j8 -N1 "$1" | tr -d ' ')" = "00" ]; then kill -SEGV $$; fi ;;
            esac
            seq 1 100000
            exit 125

            """)
        let cmd = try powercut(["crash", trace, "--check-cmd", "sh \(script)"])
        #expect(cmd.status == 1)
        #expect(cmd.stdout.contains("the checker crashed: signal 11"))
        #expect(cmd.stdout.contains("4 skipped by the checker (status 125)"))
        let slow = try powercut(["crash", trace, "--check-cmd", "sleep 30;", "--timeout", "0.3", "--jobs", "2"])
        #expect(slow.status == 1)
        #expect(slow.stdout.contains("(6 timed out)"))
    }

    @Test func theCommandSeesTheImageFileAndItsCut() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let script = try s.write("env.sh", """
            [ "$1" = "$POWERCUT_IMAGE" ] || exit 3
            [ -f "$1" ] || exit 4
            [ "$(wc -c < "$1")" -eq 256 ] || exit 5
            [ "$POWERCUT_CUT" = 5 ] && [ "$POWERCUT_EVENT" = 4 ] || exit 6
            exit 0

            """)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)"])
        #expect(r.status == 0, "\(r.stdout)")
        // Two ranges: a folder with one file per range, named after the range.
        let two = try s.write("two.pct", """
            powercut-trace 1
            pmem 0x1000 0x40 name=head
            pmem 0x2000 0x80
            store 0x1000 1 data=01
            store 0x2000 1 data=02
            sfence

            """)
        let folder = try s.write("folder.sh", """
            [ -d "$1" ] && [ "$(wc -c < "$1/head")" -eq 64 ] && [ "$(wc -c < "$1/0x2000")" -eq 128 ] || exit 1

            """)
        let f = try powercut(["crash", two, "--check-cmd", "sh \(folder)"])
        #expect(f.status == 0, "\(f.stdout)")
    }

    @Test func countPrintsEachCheckedCutAsJSON() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let r = try powercut(["crash", trace, "--count", "--format", "json"])
        #expect(r.status == 0)
        #expect(r.stdout == "[\n  {\"cut\": 5, \"images\": 6},\n  {\"cut\": 6, \"images\": 1}\n]\n")
        let all = try powercut(["crash", trace, "--count", "--cuts", "all"])
        #expect(all.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("cut ") }.count == 7)
    }

    @Test func listShowsWhichWritesEachImageKeeps() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let r = try powercut(["crash", trace, "--list"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("  line 0x1000: any prefix of cached #0 #1; 3 contents\n"))
        #expect(r.stdout.contains("  image 4: 0x1000 kept {#0} lost {#1}; 0x1040 kept {} lost {#3}\n"))
    }

    @Test func badInputGetsOneLineAndItsStatus() throws {
        let s = Scratch()
        let noData = try s.write("nodata.pct", """
            powercut-trace 1
            pmem 0x1000 0x100
            store 0x1000 8 data=0101010101010101
            store 0x1008 8
            sfence

            """)
        let r = try powercut(["crash", noData, "--count"])
        #expect(r.status == 65)
        #expect(r.stderr == "powercut: event #1 (store 0x1008 8) writes tracked memory without data=: images need the bytes written (record with --data)\n")
        #expect(r.stdout.isEmpty)
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let noChecker = try powercut(["crash", trace])
        #expect(noChecker.status == 64)
        let missingFn = try powercut(["crash", trace, "--check-lib", "/nonexistent.so", "--check-fn", "f"])
        #expect(missingFn.status == 64)
        #expect(missingFn.stderr.hasPrefix("powercut: --check-lib '/nonexistent.so': cannot load:"))
        let badInitial = try powercut(["crash", trace, "--count", "--initial", "nosuch=\(trace)"])
        #expect(badInitial.status == 64)
    }

    @Test func anInitialFileSeedsItsRange() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: true))
        var seed = Data(count: 256)
        seed[200] = 0x5a
        try seed.write(to: URL(fileURLWithPath: s.path("seed.bin")))
        let script = try s.write("seed.sh", "[ \"$(od -An -tx1 -j200 -N1 \"$1\" | tr -d ' ')\" = 5a ] || exit 1\n")
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--initial", "log=\(s.path("seed.bin"))"])
        #expect(r.status == 0, "\(r.stdout)")
        #expect(r.stdout.contains("content before the trace from file \(s.path("seed.bin"))"))
        let without = try powercut(["crash", trace, "--check-cmd", "sh \(script)"])
        #expect(without.status == 1)
    }

    @Test func explainImageTellsWhichWritesASavedImageKept() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let script = try s.write("check.sh", Self.checkScript)
        _ = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--save-images", s.path("saved")])
        let r = try powercut(["crash", trace, "--explain-image", s.path("saved") + "/cut5-image1.img"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("is a crash image of cut 5 (after #4 clwb, before #5 sfence)"))
        #expect(r.stdout.contains("lost      #1 store 0x1008..0x100f (8 bytes)"))
        // A byte no write put there.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: s.path("saved") + "/cut5-image1.img"))
        bytes[0x81] = 0x7f
        try bytes.write(to: URL(fileURLWithPath: s.path("forged.img")))
        let forged = try powercut(["crash", trace, "--explain-image", s.path("forged.img")])
        #expect(forged.status == 1)
        #expect(forged.stdout.contains("is not a crash image of the trace"))
        #expect(forged.stdout.contains("line 0x1080: 00 7f 00"))
    }

    @Test func reportsComeAsJSONSARIFAndJUnit() throws {
        let s = Scratch()
        let trace = try s.write("log.pct", Self.logWriter(fence: false))
        let script = try s.write("check.sh", Self.checkScript)
        let json = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--format", "json"])
        #expect(json.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        let summary = object["summary"] as! [String: Any]
        #expect(summary["inconsistent"] as? Int == 2)
        #expect(summary["every_image"] as? Bool == true)
        let first = (object["inconsistent"] as! [[String: Any]])[0]
        #expect(first["cut"] as? Int == 5 && first["image"] as? Int == 1 && first["status"] as? Int == 1)
        let lines = first["lines"] as! [[String: Any]]
        #expect((lines[0]["lost"] as! [[String: Any]])[0]["event"] as? Int == 1)

        let sarif = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--format", "sarif"])
        let log = try JSONSerialization.jsonObject(with: Data(sarif.stdout.utf8)) as! [String: Any]
        #expect(log["version"] as? String == "2.1.0")
        let results = ((log["runs"] as! [[String: Any]])[0]["results"] as! [[String: Any]])
        #expect(results.count == 1 && results[0]["ruleId"] as? String == "inconsistent-image")

        let junit = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--format", "junit"])
        #expect(junit.stdout.hasPrefix("<?xml"))
        #expect(junit.stdout.contains("<testsuites tests=\"2\" failures=\"1\">"))
        #expect(junit.stdout.contains("<failure message=\"inconsistent image 1 at cut 5"))
    }

    @Test func aRoundedCountIsMarkedAndNotEveryImageIsClaimed() throws {
        var text = "powercut-trace 1\npmem 0x10000 0x1000 name=pool\n"
        for i in 0..<512 { text += "ntstore 0x\(String(0x10000 + i * 8, radix: 16)) 8 data=0101010101010101\n" }
        text += "sfence\n"
        let s = Scratch()
        let trace = try s.write("copy.pct", text)
        let count = try powercut(["crash", trace, "--count", "--format", "json"])
        #expect(count.stdout == "[\n  {\"cut\": 512, \"images\": \"2^512.0\", \"rounded\": true},\n  {\"cut\": 513, \"images\": 1}\n]\n")
        let run = try powercut(["crash", trace, "--check-cmd", "true", "--max-images", "50"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("checked 51 of 2^512.0 (rounded) images at 2 cuts"))
        #expect(run.stdout.contains("not every image (1 cut above the limit)"))
        #expect(!run.stdout.contains(": every image"))
    }

    @Test func longRunsReportProgressEveryTenPercentInLogs() throws {
        var text = "powercut-trace 1\npmem 0x1000 0x100 name=log\n"
        for i in 0..<32 { text += "ntstore 0x\(String(0x1000 + i * 8, radix: 16)) 8 data=3333333333333333\n" }
        text += "sfence\n"
        let s = Scratch()
        let lib = try compileLibrary(s)
        let trace = try s.write("nt.pct", text)
        let r = try powercut(["crash", trace, "--check-lib", lib, "--check-fn", "check", "--max-images", "5000"])
        #expect(r.status == 0)
        #expect(r.stderr.contains("powercut: checked 10% ("))
        #expect(r.stderr.contains("powercut: checked 100% (5001 of 5001 images)\n"))
        #expect(r.stdout.contains("checked 5001 of 2^32.0 (rounded) images") || r.stdout.contains("checked 5001 of 4294967297 images"))
    }

    // MARK: ranges mapped and unmapped between events, init records, threads

    /// A log writer the way a whole-program recording sees it: the file is mapped
    /// (`pmem` between events) after a store to the same addresses, written, and
    /// unmapped (`pmem-release`) before another store there.
    static func mappedLogWriter(fence: Bool) -> String {
        """
        powercut-trace 1
        store 0x2000 8 data=ffffffffffffffff
        pmem 0x2000 0x100 name=log
        store 0x2000 8 data=1111111111111111
        store 0x2008 8 data=2222222222222222
        clwb 0x2000
        \(fence ? "sfence\n" : "")store 0x2040 8 data=0100000000000000
        clwb 0x2040
        sfence
        pmem-release 0x2000 0x100
        store 0x2000 8 data=3333333333333333
        clwb 0x2000
        sfence

        """
    }

    @Test func aRangeMappedBetweenEventsIsCheckedUntilItsRelease() throws {
        let s = Scratch()
        let script = try s.write("check.sh", Self.checkScript)
        let bad = try s.write("bad.pct", Self.mappedLogWriter(fence: false))
        let r = try powercut(["crash", bad, "--check-cmd", "sh \(script)"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("| commit set, record torn: 11111111111111110000000000000000"))
        #expect(r.stdout.contains("powercut: 2 inconsistent images;"))
        #expect(r.stdout.hasPrefix("powercut: range log 0x2000 (256 bytes), tracked from event #1: content before the trace from zeros\n"))
        let good = try s.write("good.pct", Self.mappedLogWriter(fence: true))
        let g = try powercut(["crash", good, "--check-cmd", "sh \(script)"])
        #expect(g.status == 0, "\(g.stdout)\(g.stderr)")
        // Neither the store before the mapping nor the one after the release reaches an image.
        let untouched = try s.write("untouched.sh", """
            b=$(od -An -tx1 -N1 "$1" | tr -d ' ')
            [ "$b" = ff ] && exit 1
            [ "$b" = 33 ] && exit 1
            exit 0

            """)
        let u = try powercut(["crash", bad, "--check-cmd", "sh \(untouched)", "--cuts", "all"])
        #expect(u.status == 0, "\(u.stdout)\(u.stderr)")
        // No cut after the release has an image: the end is not checked.
        let count = try powercut(["crash", bad, "--count", "--format", "json"])
        #expect(count.status == 0)
        #expect(count.stdout == "[\n  {\"cut\": 7, \"images\": 6}\n]\n")
    }

    @Test func theCheckerSeesTheRangesTrackedAtEachCut() throws {
        let s = Scratch()
        let trace = try s.write("two.pct", """
            powercut-trace 1
            pmem 0x1000 0x40 name=head
            store 0x1000 1 data=01
            sfence
            pmem 0x2000 0x80 name=tail
            store 0x2000 1 data=02
            sfence
            pmem-release 0x1000 0x40
            store 0x2001 1 data=03
            sfence

            """)
        let log = s.path("seen.log")
        let script = try s.write("seen.sh", """
            if [ -d "$1" ]; then
              echo "$POWERCUT_CUT dir $(ls "$1" | tr '\\n' ' ')$(wc -c < "$1/head") $(wc -c < "$1/tail")"
            else
              echo "$POWERCUT_CUT file $(basename "$1") $(wc -c < "$1")"
            fi >> \(log)
            exit 0

            """)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)", "--cuts", "all", "--jobs", "1"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let seen = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        var cuts = Set<Int>()
        for line in seen {
            let cut = Int(line.split(separator: " ")[0])!
            cuts.insert(cut)
            let rest = line.split(separator: " ", maxSplits: 1)[1]
            switch cut {
            case 0...2: #expect(rest == "file head 64")
            case 3...5: #expect(rest == "dir head tail 64 128")
            default: #expect(rest == "file tail 128")
            }
        }
        // Each change of the set of ranges is checked again, whatever the cut before held.
        #expect(cuts.isSuperset(of: [0, 3, 6]))
    }

    @Test func initRecordsAreTheContentBeforeTheTrace() throws {
        let s = Scratch()
        let trace = try s.write("init.pct", """
            powercut-trace 1
            pmem 0x1000 0x100 name=log
            init 0x1010 data=aabb
            store 0x1000 8 data=1111111111111111
            store 0x1011 1 data=cc
            sfence

            """)
        // Byte 0x10 keeps its init content in every image; 0x11 is init's or the store's.
        let script = try s.write("init.sh", """
            b=$(od -An -tx1 -j16 -N2 "$1" | tr -d ' ')
            [ "$b" = aabb ] || [ "$b" = aacc ] || { echo "bytes 16..17: $b"; exit 1; }
            exit 0

            """)
        let r = try powercut(["crash", trace, "--check-cmd", "sh \(script)"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("content before the trace from init records"))
        // Without the init record the same checker sees zeros there.
        let bare = try s.write("bare.pct", """
            powercut-trace 1
            pmem 0x1000 0x100 name=log
            store 0x1011 1 data=cc
            sfence

            """)
        let b = try powercut(["crash", bare, "--check-cmd", "sh \(script)"])
        #expect(b.status == 1)
        #expect(b.stdout.contains("| bytes 16..17: 00cc"))
    }

    /// Thread 1 writes a record back and then its commit; `fencer` is the thread of the
    /// fence between them.
    static func threadedLogWriter(fencer: Int) -> String {
        """
        powercut-trace 1
        pmem 0x1000 0x100 name=log
        store 0x1000 16 data=11111111111111112222222222222222 thread=1
        clwb 0x1000 thread=1
        sfence thread=\(fencer)
        store 0x1040 8 data=0100000000000000 thread=1
        clwb 0x1040 thread=1
        sfence thread=1

        """
    }

    @Test func aFenceOfAnotherThreadDoesNotOrderTheRecordBeforeTheCommit() throws {
        let s = Scratch()
        let script = try s.write("check.sh", Self.checkScript)
        let other = try s.write("other.pct", Self.threadedLogWriter(fencer: 0))
        let r = try powercut(["crash", other, "--check-cmd", "sh \(script)"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("| commit set, record torn: 00000000000000000000000000000000"))
        #expect(r.stdout.contains("thread 1"))
        let own = try s.write("own.pct", Self.threadedLogWriter(fencer: 1))
        let o = try powercut(["crash", own, "--check-cmd", "sh \(script)"])
        #expect(o.status == 0, "\(o.stdout)\(o.stderr)")
    }

    /// Valgrind on PATH, for recording whole programs with `powercut run`.
    static let hasValgrind: Bool = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/valgrind") }
    }()

    /// A program that maps a metadata file and writes it durably, then maps its log file
    /// (so that range is declared between events), writes a record with non-temporal
    /// stores, then the commit word, and unmaps both files (`pmem-release`). FENCE_BUG
    /// leaves out the fence between the record and the commit.
    static let mappedLogProgram = """
        #include <fcntl.h>
        #include <immintrin.h>
        #include <stdint.h>
        #include <sys/mman.h>
        #include <unistd.h>
        static char *map_file(const char *path) {
            int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || ftruncate(fd, 4096) != 0) _exit(9);
            char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) _exit(9);
            return p;
        }
        int main(int argc, char **argv) {
            char *meta = map_file(argv[1]);
            meta[0] = 7;
            _mm_clflush(meta);
            _mm_sfence();
            char *log = map_file(argv[2]);
            _mm_stream_si64((long long *)log, 0x1111111111111111LL);
            _mm_stream_si64((long long *)(log + 8), 0x2222222222222222LL);
        #ifndef FENCE_BUG
            _mm_sfence();
        #endif
            *(volatile uint64_t *)(log + 64) = 1;
            _mm_clflush(log + 64);
            _mm_sfence();
            munmap(log, 4096);
            munmap(meta, 4096);
            return 0;
        }
        """

    @Test(.enabled(if: hasValgrind, "needs valgrind"))
    func aProgramRecordedWithPowercutRunIsCheckedForCrashImages() throws {
        let s = Scratch()
        // The image is the metadata file alone, or a folder with both files (named after
        // their paths); the rule is about the log.
        let script = try s.write("check.sh", """
            if [ -d "$1" ]; then set -- "$1"/*log; else case "$1" in *log) ;; *) exit 0;; esac; fi

            """ + Self.checkScript)
        for bug in [true, false] {
            let name = bug ? "bad" : "good"
            let exe = try RunCommandTests.compile(Self.mappedLogProgram, name, in: s, flags: bug ? ["-DFENCE_BUG"] : [])
            let run = try powercut(["run", "--pmem-file", "meta", "--pmem-file", "log", "-o", "\(name).pctb", "--", exe, "meta", "log"], in: s.url)
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            let t = try Trace(contentsOf: s.path("\(name).pctb"))
            #expect(t.events.contains { $0.kind == .pmem } && t.events.contains { $0.kind == .pmemRelease })
            let r = try powercut(["crash", s.path("\(name).pctb"), "--check-cmd", "sh \(script)"], in: s.url)
            if bug {
                #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
                #expect(r.stdout.contains("| commit set, record torn: "))
                #expect(r.stdout.contains("main (\(name).c:"))
                #expect(r.stdout.contains("log 0x") && r.stdout.contains("(4096 bytes), tracked from event #"))
            } else {
                #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            }
        }
    }
}
