import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import PowercutTestSupport

/// `sweep` in CI, end to end with the built binary on the built-in subjects: its SARIF,
/// JUnit and GitHub output and its baselines across grids.
@Suite struct SweepCITests {
    let small = ["--dst-offsets", "60-63", "--sizes", "1-8", "--jobs", "2", "--quiet"]
    let other = ["--dst-offsets", "0-3,56-63", "--sizes", "1-16,250-252", "--jobs", "2", "--quiet"]

    @Test func aBaselineFromOneGridPassesAnotherThatFindsTheSameBugAndFailsOnANewOne() throws {
        let s = Scratch()
        let base = s.path("sweep.baseline")
        let take = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("a"), "--write-baseline", base] + small)
        #expect(take.status == 1, "\(take.stderr)")
        let text = try String(contentsOfFile: base, encoding: .utf8)
        #expect(text.hasPrefix("powercut-baseline 1\n"))
        #expect(text.contains("not-durable  copy_user_flushcache_2017  tail dirty by powercut!pc_nocache_2016"))
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("powercut-baseline") {
            #expect(!line.contains("dst+") && !line.contains("0x7f"), "no offset or address in \(line)")
        }

        // Another grid: other sizes and alignments, the same missing tail write-back.
        let without = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("b")] + other)
        #expect(without.status == 1 && without.stdout.contains("FAIL"), "the other grid fails without the baseline")
        let with = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("c"), "--baseline", base] + other)
        #expect(with.status == 0, "\(with.stdout)\(with.stderr)")
        #expect(with.stdout.contains("FAIL") && with.stdout.contains("0 new error findings"))

        // A new bug (another routine strands the head too) fails the run, and only it is annotated.
        let new = try powercut(["sweep", "memcpy_to_pmem_2015", "copy_user_flushcache_2017", "--save-failing", s.path("d"),
                                "--baseline", base, "--format", "github"] + other)
        #expect(new.status == 1)
        let annotations = new.stdout.split(separator: "\n").filter { $0.hasPrefix("::error") }
        #expect(!annotations.isEmpty)
        #expect(annotations.allSatisfy { $0.contains("memcpy_to_pmem_2015") && !$0.contains("copy_user_flushcache_2017") })
    }

    @Test func sarifHasOneResultPerPatternRelativeToTheSourceRootAndValidates() throws {
        let s = Scratch()
        let run = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("t"), "--format", "sarif"] + small)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(try sarifSchemaProblem(run.stdout) == nil)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let theRun = try #require((doc["runs"] as? [[String: Any]])?.first)
        let bases = try #require(theRun["originalUriBaseIds"] as? [String: [String: String]])
        #expect(bases["%SRCROOT%"]?["uri"] == "file://" + packageRoot.standardizedFileURL.path + "/")
        let results = try #require(theRun["results"] as? [[String: Any]])
        let errors = results.filter { $0["level"] as? String == "error" }
        // One pattern (the tail), its first case: dirty-at-return and not-durable.
        #expect(errors.count == 2)
        for r in errors {
            let location = try #require(((r["locations"] as? [[String: Any]])?.first?["physicalLocation"]) as? [String: Any])
            let artifact = try #require(location["artifactLocation"] as? [String: Any])
            // The routine's own frame, not the inlined store helper in primitives.h.
            #expect(artifact["uri"] as? String == "Sources/CPowercutSubjects/nocache.c")
            #expect(artifact["uriBaseId"] as? String == "%SRCROOT%")
            let message = try #require((r["message"] as? [String: Any])?["text"] as? String)
            #expect(message.contains("Stored by pc_store1 (primitives.h:40), inlined into"))
            let target = try #require((r["analysisTarget"] as? [String: Any])?["uri"] as? String)
            #expect(target.hasSuffix("copy_user_flushcache_2017-dst60-src0-n5.pct"), "the first case's saved trace")
            #expect(FileManager.default.fileExists(atPath: s.path("t/copy_user_flushcache_2017-dst60-src0-n5.pct")))
        }

        // Another root: the same source files are now outside it, absolute.
        let elsewhere = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("u"), "--format", "sarif",
                                      "--source-root", s.url.path] + small)
        #expect(elsewhere.stdout.contains("\"uri\": \"file://\(packageRoot.standardizedFileURL.path)/Sources/CPowercutSubjects/nocache.c\""))
        #expect(try sarifSchemaProblem(elsewhere.stdout) == nil)
    }

    @Test func junitParsesAndGitHubPathsAreRelative() throws {
        let s = Scratch()
        let junit = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("t"), "--format", "junit"] + small)
        #expect(junit.status == 1)
        let parser = XMLParser(data: Data(junit.stdout.utf8))
        #expect(parser.parse(), "JUnit XML parses")
        #expect(junit.stdout.contains("<failure"))
        let github = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("t"), "--format", "github"] + small)
        let notDurable = github.stdout.split(separator: "\n").filter { $0.contains("title=powercut not-durable::") }
        #expect(notDurable.count == 1 && notDurable[0].hasPrefix("::error file=Sources/CPowercutSubjects/nocache.c,"))
        #expect(github.stdout.contains("stored by pc_store1 (primitives.h:40), inlined into"))
    }

    @Test func ciOutputNeedsTheSavedTracesAndAReadableBaseline() throws {
        let s = Scratch()
        for format in ["sarif", "junit", "github"] {
            let run = try powercut(["sweep", "copy_user_flushcache_2017", "--format", format] + small)
            #expect(run.status == 64 && run.stdout.isEmpty && run.stderr.contains("needs --save-failing DIR"))
        }
        let bad = try s.write("bad.baseline", "not a baseline\n")
        let run = try powercut(["sweep", "copy_user_flushcache_2017", "--save-failing", s.path("t"), "--baseline", bad] + small)
        #expect(run.status == 65 && run.stderr.contains("bad.baseline:1: expected 'powercut-baseline 1' first"))
    }
}
