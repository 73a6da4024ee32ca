import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import PowercutTestSupport

/// `powercut check` in CI: SARIF, JUnit, GitHub annotations, baselines, suppressions.
@Suite struct CICommandTests {
    let v1 = "Traces/ci/log-append-v1.pct"
    /// The same bug at other ASLR bases and event numbers, plus a new one in log_commit.
    let v2 = "Traces/ci/log-append-v2.pct"
    let baseline = "Traces/ci/log-append.baseline"
    let supp = "Traces/ci/libpmem-tail.supp"

    /// Every trace of the regression corpus (text and binary).
    var corpus: [String] {
        let dir = packageRoot.appendingPathComponent("Traces")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pct") || $0.hasSuffix(".pctb") }.sorted().map { "Traces/" + $0 }
    }

    // MARK: SARIF

    @Test func sarifOfTheWholeCorpusIsValid() throws {
        let run = try powercut(["check", "--format", "sarif"] + corpus)
        #expect(run.status == 1 && run.stderr.isEmpty)
        let problem = try sarifSchemaProblem(run.stdout)
        #expect(problem == nil, "\(problem ?? "")")
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let results = (doc["runs"] as! [[String: Any]])[0]["results"] as! [[String: Any]]
        let json = try powercut(["check", "--format", "json"] + corpus)
        let traces = (try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any])["traces"] as! [[String: Any]]
        #expect(results.count == traces.reduce(0) { $0 + ($1["findings"] as! [Any]).count }, "one result per finding")
    }

    @Test func sarifWithABaselineAndSuppressionsIsValidAndSaysWhichAreNew() throws {
        let run = try powercut(["check", "--format", "sarif", "--baseline", baseline, "--suppressions", supp, v1, v2, "Traces/stacks-and-data.pct"])
        #expect(run.status == 1)
        let problem = try sarifSchemaProblem(run.stdout)
        #expect(problem == nil, "\(problem ?? "")")
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let results = (doc["runs"] as! [[String: Any]])[0]["results"] as! [[String: Any]]
        #expect(results.map { $0["baselineState"] as? String } == ["unchanged", "unchanged", "unchanged", "unchanged", "new", "new", "new"])
        #expect(results.map { $0["suppressions"] != nil } == [true, true, true, true, false, false, false])
        // The same bug at two ASLR bases: one fingerprint.
        let prints = results.map { ($0["partialFingerprints"] as! [String: String])["powercut/v2"]! }
        #expect(prints[0] == prints[2] && prints[1] == prints[3])
        let location = ((results[4]["locations"] as! [[String: Any]])[0]["physicalLocation"]) as! [String: Any]
        #expect((location["artifactLocation"] as! [String: Any])["uri"] as? String == "file:///opt/app/bin/logwriter")
        #expect((location["address"] as! [String: Any])["relativeAddress"] as? Int == 0x1240)
    }

    // MARK: JUnit and GitHub

    @Test func junitOfTheWholeCorpusIsWellFormed() throws {
        let run = try powercut(["check", "--format", "junit"] + corpus)
        #expect(run.status == 1)
        let doc = try XMLDocument(xmlString: run.stdout, options: [])
        let root = try #require(doc.rootElement())
        let suites = root.elements(forName: "testsuite")
        #expect(suites.count == corpus.count)
        let cases = suites.flatMap { $0.elements(forName: "testcase") }
        #expect(root.attribute(forName: "tests")?.stringValue == String(cases.count))
        let failures = cases.compactMap { $0.elements(forName: "failure").first }
        #expect(root.attribute(forName: "failures")?.stringValue == String(failures.count) && failures.count > 10)
        let rules = Set(failures.compactMap { $0.attribute(forName: "type")?.stringValue })
        #expect(rules == ["not-durable", "dirty-at-return", "out-of-bounds-store"])
        #expect(failures.allSatisfy { $0.stringValue?.hasPrefix("error: ") == true || $0.stringValue?.hasPrefix("warning: ") == true || $0.stringValue?.hasPrefix("note: ") == true })
    }

    @Test func junitCountsEveryOpAndHidesKnownFindings() throws {
        let run = try powercut(["check", "--format", "junit", "--baseline", baseline, v2])
        let doc = try XMLDocument(xmlString: run.stdout, options: [])
        let cases = try #require(doc.rootElement()?.elements(forName: "testsuite").first?.elements(forName: "testcase"))
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue } == ["op 1 (memcpy_flushcache)", "op 2 (log_commit)"])
        #expect(cases[0].elements(forName: "failure").isEmpty, "known from the baseline")
        #expect(cases[1].elements(forName: "failure").first?.attribute(forName: "type")?.stringValue == "not-durable")
    }

    @Test func githubAnnotationsPointAtTheTraceLine() throws {
        let run = try powercut(["check", "--format", "github", "--baseline", baseline, v2, "Traces/adr-redundant-flush.pct"])
        #expect(run.status == 1)
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("::error file=Traces/ci/log-append-v2.pct,line=26,title=powercut not-durable::8 bytes of op 2 (log_commit) not durable at its return, #12%0A"))
        #expect(lines[1].hasPrefix("::notice file=Traces/adr-redundant-flush.pct,line="))
        #expect(lines[2] == "powercut: 2 traces, 18 events: 1 error, 0 warnings, 1 note (2 known from the baseline)")
    }

    @Test func everyFormatGivesTheSameBytesTwice() throws {
        for format in ["sarif", "junit", "github", "text", "brief", "json"] {
            let args = ["check", "--format", format, "--baseline", baseline, "--suppressions", supp, v1, v2, "Traces/stacks-and-data.pct"]
            let a = try powercut(args)
            let b = try powercut(args)
            #expect(a.stdout == b.stdout && !a.stdout.isEmpty, "\(format)")
        }
    }

    // MARK: baselines

    @Test func aWrittenBaselineAcceptsTheOldBugAndFailsOnTheNewOne() throws {
        let s = Scratch()
        let file = s.path("pmem.baseline")
        let write = try powercut(["check", "--format", "brief", "--write-baseline", file, v1])
        #expect(write.status == 1, "writing a baseline does not change the verdict")
        #expect(!FileManager.default.fileExists(atPath: file + ".incomplete"))
        let written = try String(contentsOfFile: file, encoding: .utf8)
        let committed = try String(contentsOf: packageRoot.appendingPathComponent(baseline), encoding: .utf8)
        #expect(written == committed, "Traces/ci/log-append.baseline is what --write-baseline writes")
        // The old bug, recorded again: known.
        let old = try powercut(["check", "--baseline", file, v1])
        #expect(old.status == 0)
        #expect(old.stdout.hasSuffix("powercut: 1 trace, 7 events: 0 errors, 0 warnings, 0 notes (2 known from the baseline)\n"))
        // The new recording: the old bug at other addresses is still known; the new one fails.
        let new = try powercut(["check", "--format", "brief", "--baseline", file, v2])
        #expect(new.status == 1)
        #expect(new.stdout == "error not-durable op=2 cut=13 at=#12 0x7f9200000080+8 body flushing store=#10 via=#11\n")
        #expect(try powercut(["check", "--baseline", file, "--error-exitcode", "7", v2]).status == 7)
    }

    @Test func malformedOrMissingBaselinesExit65WithOneLine() throws {
        let s = Scratch()
        let bad = try s.write("bad.baseline", "powercut-baseline 1\n# fine\nxyz not a fingerprint\n")
        let run = try powercut(["check", "--format", "sarif", "--baseline", bad, v1])
        #expect(run.status == 65 && run.stdout.isEmpty)
        #expect(run.stderr == "powercut: \(bad):3: expected a fingerprint of 16 hex digits at the start of the line, found 'xyz'\n")
        let missing = try powercut(["check", "--baseline", "no/such.baseline", v1])
        #expect(missing.status == 65 && missing.stdout.isEmpty)
        #expect(missing.stderr == "powercut: no/such.baseline: cannot open: No such file or directory (check the path and permissions)\n")
        let unwritable = try powercut(["check", "--write-baseline", "no/such/dir/b", v1])
        #expect(unwritable.status == 65 && unwritable.stdout.isEmpty, "no report claims success when the baseline was not written")
    }

    @Test func aSymbolicLinkIsWrittenThroughNotReplaced() throws {
        let s = Scratch()
        let target = try s.write("target.baseline", "old\n")
        let link = s.path("link.baseline")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(try powercut(["check", "--write-baseline", link, "-o", link + ".report", v1]).status == 1)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target)
        #expect(try String(contentsOfFile: target, encoding: .utf8).hasPrefix("powercut-baseline 1\n"))
    }

    // MARK: suppressions

    @Test func suppressionsLeaveOutWhatTheyMatch() throws {
        let run = try powercut(["check", "--suppressions", supp, v1, v2])
        #expect(run.status == 1)
        #expect(!run.stdout.contains("memcpy_flushcache) returned"))
        #expect(run.stdout.contains("error: not-durable: 8 bytes of op 2 (log_commit) not durable at its return, #12\n"))
        #expect(run.stdout.hasSuffix("""
            powercut: 2 traces, 20 events: 1 error, 0 warnings, 0 notes (4 suppressed)
            powercut: suppressed 4 findings with 'libpmem-flushcache-tail' (Traces/ci/libpmem-tail.supp:5)

            """))
        #expect(try powercut(["check", "--suppressions", supp, v1]).status == 0)
    }

    @Test func malformedSuppressionsExit65WithOneLine() throws {
        let s = Scratch()
        let bad = try s.write("bad.supp", "{\n   name\n   powercut:not-durable\n   fun:\n}\n")
        let run = try powercut(["check", "--suppressions", supp, "--suppressions", bad, v1])
        #expect(run.status == 65 && run.stdout.isEmpty)
        #expect(run.stderr == "powercut: \(bad):4: expected a frame line (fun:NAME, obj:PATH or ...) or '}', found 'fun:'\n")
    }

    @Test func generatedSuppressionsFollowTheReportAndSuppressItsFindings() throws {
        let s = Scratch()
        let run = try powercut(["check", "--gen-suppressions", v2])
        #expect(run.status == 1)
        let report = try powercut(["check", v2]).stdout
        #expect(run.stdout.hasPrefix(report + "\n{\n   dirty-at-return in memcpy_flushcache\n   powercut:dirty-at-return\n"))
        let blocks = String(run.stdout.dropFirst(report.count + 1))
        #expect(blocks.contains("{\n   not-durable in log_commit\n   powercut:not-durable\n   obj:/opt/app/bin/logwriter\n   obj:/opt/app/bin/logwriter\n}\n"))
        let file = try s.write("gen.supp", blocks)
        #expect(try powercut(["check", "--suppressions", file, v2]).status == 0)
        // A document format needs standard output to itself.
        let sarif = try powercut(["check", "--format", "sarif", "--gen-suppressions", v2])
        #expect(sarif.status == 64 && sarif.stdout.isEmpty)
        let split = try powercut(["check", "--format", "sarif", "--gen-suppressions", "-o", s.path("r.sarif"), v2])
        #expect(split.status == 1 && split.stdout == blocks)
        #expect(try sarifSchemaProblem(String(contentsOfFile: s.path("r.sarif"), encoding: .utf8)) == nil)
    }

    @Test func badFormatIsAUsageError() throws {
        #expect(try powercut(["check", "--format", "xml", v1]).status == 64)
    }
}
