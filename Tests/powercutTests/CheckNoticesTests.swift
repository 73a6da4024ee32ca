import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// What the text report says about a whole trace — nothing in it was checked, stores
/// fell outside declared pmem, findings were left out — every format says too.
@Suite struct CheckNoticesTests {
    let noContract = """
        powercut-trace 1
        pmem 0x1000 0x1000
        op 1 begin dst=0x9000 len=8 contract=none
        store 0x9000 8
        clwb 0x1000
        clwb 0x1000
        op 1 end

        """

    func check(_ format: String, _ extra: [String] = []) throws -> Run {
        let s = Scratch()
        _ = try s.write("quiet.pct", noContract)
        return try powercut(["check", "--format", format, "--max-findings", "1"] + extra + ["quiet.pct"], in: s.url)
    }

    @Test func sarifCarriesThemAsToolExecutionNotifications() throws {
        let run = try check("sarif")
        #expect(run.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let theRun = try #require((doc["runs"] as? [[String: Any]])?.first)
        let invocation = try #require((theRun["invocations"] as? [[String: Any]])?.first)
        #expect(invocation["executionSuccessful"] as? Bool == true)
        let notes = try #require(invocation["toolExecutionNotifications"] as? [[String: Any]])
        #expect(notes.map { ($0["descriptor"] as? [String: Any])?["id"] as? String } == ["nothing-checked", "stores-outside-pmem", "findings-omitted"])
        #expect(notes.map { $0["level"] as? String } == ["warning", "note", "note"])
        #expect(((notes[0]["message"] as? [String: Any])?["text"] as? String)?.hasPrefix("quiet.pct: nothing in this trace was checked") == true)
        let uri = (((notes[1]["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any])?["uri"]
        #expect(uri as? String == "quiet.pct")
        let driver = (theRun["tool"] as? [String: Any])?["driver"] as? [String: Any]
        #expect((driver?["notifications"] as? [[String: Any]])?.map { $0["id"] as? String } == ["nothing-checked", "stores-outside-pmem", "findings-omitted"])
    }

    @Test func githubCarriesThemAsWorkflowCommands() throws {
        let run = try check("github")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("::warning file=quiet.pct,title=powercut nothing-checked::nothing in this trace was checked") })
        #expect(lines.contains { $0.hasPrefix("::notice file=quiet.pct,title=powercut stores-outside-pmem::1 store wrote bytes outside") })
        #expect(lines.contains { $0.hasPrefix("::notice file=quiet.pct,title=powercut findings-omitted::1 more finding not listed") })
        #expect(run.status == 0)
    }

    @Test func junitCarriesThemInTheSuiteOutput() throws {
        let run = try check("junit")
        #expect(run.stdout.contains("    <system-out>warning: nothing-checked: nothing in this trace was checked"))
        #expect(run.stdout.contains("note: stores-outside-pmem: 1 store wrote bytes outside every declared pmem range"))
        #expect(run.stdout.contains("note: findings-omitted: 1 more finding not listed (1 note)"))
        #expect(run.stdout.contains("</system-out>\n  </testsuite>\n</testsuites>\n"))
        let doc = try XMLDocument(xmlString: run.stdout, options: [])
        #expect(try doc.nodes(forXPath: "//testsuite/system-out").count == 1)
    }

    @Test func aCheckedCleanTraceHasNone() throws {
        for format in ["sarif", "github", "junit"] {
            let run = try powercut(["check", "--format", format, "Traces/adr-example-clean.pct"])
            let notice = format == "sarif" ? "\"invocations\"" : "nothing-checked"
            #expect(run.status == 0 && !run.stdout.contains(notice), "\(format)")
        }
    }
}
