import Foundation
import Testing

@Suite struct CheckCommandTests {
    let failing = "Traces/adr-tail-not-written-back.pct"
    let clean = "Traces/adr-example-clean.pct"

    @Test func aCleanTraceExitsZeroAndSaysSo() throws {
        let run = try powercut(["check", clean])
        #expect(run.status == 0)
        #expect(run.stdout.contains("ok (0 errors, 0 warnings, 0 notes)"))
        #expect(run.stdout.hasSuffix("powercut: 1 trace, 8 events: 0 errors, 0 warnings, 0 notes\n"))
    }

    @Test func findingsAreReportedValgrindStyleAndExitOne() throws {
        let run = try powercut(["check", failing])
        #expect(run.status == 1)
        #expect(run.stdout.contains("error: dirty-at-return: op 1 (memcpy_flushcache) returned at #5 with 2 bytes dirty in the cache"))
        #expect(run.stdout.contains("0x10048-0x10049 (2 bytes, tail): dirty, from store #4"))
        #expect(run.stdout.contains("      at 0x401a2c: ???\n      by 0x4020f0: ???\n"))
        #expect(run.stdout.contains("missing: a write-back (clwb/clflushopt/clflush) of line 0x10040 after store #4, then a fence"))
        #expect(run.stdout.hasSuffix("powercut: 1 trace, 7 events: 2 errors, 0 warnings, 0 notes\n"))
    }

    @Test func errorExitcodeIsHonoured() throws {
        #expect(try powercut(["check", "--error-exitcode", "3", failing]).status == 3)
        #expect(try powercut(["check", "--error-exitcode", "3", clean]).status == 0)
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let run = try powercut(["check", "--format", "json", failing, clean])
        #expect(run.status == 1)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let traces = doc["traces"] as! [[String: Any]]
        #expect(traces.count == 2)
        #expect(traces[0]["file"] as? String == failing && traces[0]["events"] as? Int == 7 && traces[0]["domain"] as? String == "adr")
        let findings = traces[0]["findings"] as! [[String: Any]]
        #expect(findings.map { $0["rule"] as? String } == ["dirty-at-return", "not-durable"])
        #expect(findings[0]["severity"] as? String == "error" && findings[0]["op"] as? Int == 1 && findings[0]["cut"] as? Int == 6)
        let range = (findings[1]["ranges"] as! [[String: Any]])[0]
        #expect(range["start"] as? String == "0x10048" && range["length"] as? Int == 2)
        #expect(range["position"] as? String == "tail" && range["state"] as? String == "dirty" && range["event"] as? Int == 4)
        #expect(range["missing"] as? String == "write-back+fence")
        let summary = doc["summary"] as! [String: Any]
        #expect(summary["errors"] as? Int == 2 && summary["warnings"] as? Int == 0 && summary["notes"] as? Int == 0)
        #expect((traces[1]["findings"] as! [Any]).isEmpty)
    }

    @Test func outputIsDeterministic() throws {
        let a = try powercut(["check", "--format", "json", "Traces/adr-missing-drain.pct", failing])
        let b = try powercut(["check", "--format", "json", "Traces/adr-missing-drain.pct", failing])
        #expect(a.stdout == b.stdout && !a.stdout.isEmpty)
    }

    @Test func domainOverridesTheTrace() throws {
        let run = try powercut(["check", "--format", "brief", "--domain", "eadr", failing])
        #expect(run.status == 0, "under eADR the cached tail is durable at the fence")
    }

    @Test func cutsShowDurabilityBuildingUp() throws {
        let run = try powercut(["check", "--cuts", failing])
        #expect(run.stdout.contains("cut      dirty  flushing        wc    queued   at risk\n"))
        #expect(run.stdout.contains("\n5             2         3         8         0        13\n"))
        #expect(run.stdout.contains("\n7             2         0         0         0         2\n"))
        let json = try powercut(["check", "--cuts", "--format", "json", failing])
        #expect(json.stdout.contains("{\"cut\":7,\"dirty\":2,\"flushing\":0,\"wc\":0,\"queued\":0}"))
    }

    @Test func standardInputIsATrace() throws {
        let text = try String(contentsOf: packageRoot.appendingPathComponent(failing), encoding: .utf8)
        let run = try powercut(["check", "--format", "brief", "-"], stdin: text)
        #expect(run.status == 1 && run.stdout.contains("error not-durable op=1 cut=7 at=#6"))
    }

    @Test func aMalformedTraceIsOneLineAndExits65WithNoOutput() throws {
        let s = Scratch()
        let bad = try s.write("bad.pct", "powercut-trace 1\npmem 0 0x100\nstor 0 1\n")
        let run = try powercut(["check", "--format", "json", clean, bad])
        #expect(run.status == 65)
        #expect(run.stdout.isEmpty, "no partial report")
        #expect(run.stderr == "powercut: \(bad):3: unknown record 'stor' (expected store, ntstore, clwb, clflushopt, clflush, sfence, mfence, fence, wpqflush, op, durable, mark, pmem, pmem-release, stack; or before the events: line-size, domain, module, init, meta)\n")
    }

    @Test func aMissingFileExits65() throws {
        let run = try powercut(["check", "no/such/trace.pct"])
        #expect(run.status == 65)
        #expect(run.stderr == "powercut: no/such/trace.pct: cannot open trace: No such file or directory (check the path and permissions)\n")
    }

    @Test func usageErrorsExit64() throws {
        #expect(try powercut(["check", "--no-such-flag", clean]).status == 64)
        #expect(try powercut(["check", "--domain", "adr3", clean]).status == 64)
        #expect(try powercut(["check"]).status == 64)
        #expect(try powercut(["frobnicate"]).status == 64)
    }

    @Test func theReportCanGoToAFileCrashSafely() throws {
        let s = Scratch()
        let out = s.path("report.json")
        let run = try powercut(["check", "--format", "json", "-o", out, failing])
        #expect(run.status == 1 && run.stdout.isEmpty)
        #expect(try String(contentsOfFile: out, encoding: .utf8).contains("\"dirty-at-return\""))
        #expect(!FileManager.default.fileExists(atPath: out + ".incomplete"))
    }

    @Test func convertRoundTripsThroughTheBinaryForm() throws {
        let s = Scratch()
        // The corpus trace is canonical once comments are dropped: convert it to text first.
        #expect(try powercut(["convert", "Traces/stacks-and-data.pct", s.path("a.pct")]).status == 0)
        #expect(try powercut(["convert", s.path("a.pct"), s.path("a.pctb")]).status == 0)
        #expect(try powercut(["convert", s.path("a.pctb"), s.path("b.pct")]).status == 0)
        let a = try Data(contentsOf: URL(fileURLWithPath: s.path("a.pct")))
        let b = try Data(contentsOf: URL(fileURLWithPath: s.path("b.pct")))
        #expect(a == b)
        let fromBinary = try powercut(["check", "--format", "brief", s.path("a.pctb")])
        let fromText = try powercut(["check", "--format", "brief", "Traces/stacks-and-data.pct"])
        #expect(fromBinary.stdout == fromText.stdout && fromBinary.status == 1)
    }
}

@Suite struct OutputFileTests {
    @Test func devicesAndSymlinksAreWrittenThroughNotReplaced() throws {
        let run = try powercut(["check", "--format", "json", "-o", "/dev/null", "Traces/adr-example-clean.pct"])
        #expect(run.status == 0)
        var st = stat()
        #expect(lstat("/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "/dev/null must stay a device")
        let s = Scratch()
        let target = s.path("real.json"), link = s.path("link.json")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(try powercut(["check", "--format", "json", "-o", link, "Traces/adr-example-clean.pct"]).status == 0)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target, "the link stays a link")
        #expect(try String(contentsOfFile: target, encoding: .utf8).contains("\"traces\""))
    }
}
