import Foundation
import Testing

/// A trace that promises nothing, or whose stores miss declared pmem, is never a plain
/// "ok": every format says so, and the exit status stays 0.
@Suite struct NothingCheckedTests {
    let noContract = """
        powercut-trace 1
        pmem 0x1000 0x1000
        op 1 begin dst=0x1000 len=8 contract=none
        store 0x1000 8
        op 1 end

        """
    let outsidePmem = """
        powercut-trace 1
        pmem 0x1000 0x1000
        op 1 begin dst=0x9000 len=8 contract=persist
        store 0x9000 8
        store 0x9008 4
        op 1 end

        """

    @Test func aTraceWithNothingJudgedWarnsButExitsZero() throws {
        let run = try powercut(["check", "-"], stdin: noContract)
        #expect(run.status == 0)
        #expect(run.stdout.contains("warning: nothing-checked: nothing in this trace was checked"))
        #expect(run.stdout.contains("== -: nothing checked (0 errors, 0 warnings, 0 notes)"))
        #expect(!run.stdout.contains(": ok"))
        #expect(run.stdout.hasSuffix("; nothing checked in 1 trace\n"))
        let brief = try powercut(["check", "--format", "brief", "-"], stdin: noContract)
        #expect(brief.stdout == "warning nothing-checked\n" && brief.status == 0)
    }

    @Test func storesOutsidePmemAreCountedInANote() throws {
        let run = try powercut(["check", "-"], stdin: outsidePmem)
        #expect(run.status == 0)
        #expect(run.stdout.contains("note: stores-outside-pmem: 2 stores wrote bytes outside every declared pmem range"))
        #expect(run.stdout.contains("== -: ok for the bytes in pmem only (0 errors, 0 warnings, 0 notes)"))
        let brief = try powercut(["check", "--format", "brief", "-"], stdin: outsidePmem)
        #expect(brief.stdout == "note stores-outside-pmem stores=2\n")
    }

    @Test func jsonCarriesTheFlagsAndNotices() throws {
        let run = try powercut(["check", "--format", "json", "-"], stdin: noContract)
        let doc = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let trace = (doc["traces"] as! [[String: Any]])[0]
        #expect(trace["checkedAnything"] as? Bool == false)
        #expect(trace["storesOutsidePmem"] as? Int == 0)
        #expect(trace["omittedFindings"] as? Int == 0)
        let notices = trace["notices"] as! [[String: Any]]
        #expect(notices.map { $0["id"] as? String } == ["nothing-checked"])
        #expect(notices[0]["severity"] as? String == "warning")
        let summary = doc["summary"] as! [String: Any]
        #expect(summary["nothingChecked"] as? Int == 1)
        let other = try powercut(["check", "--format", "json", "-"], stdin: outsidePmem)
        let t2 = ((try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as! [String: Any])["traces"] as! [[String: Any]])[0]
        #expect(t2["checkedAnything"] as? Bool == true && t2["storesOutsidePmem"] as? Int == 2)
    }

    @Test func aCheckedCleanTraceIsStillPlainOk() throws {
        let run = try powercut(["check", "--format", "brief", "Traces/adr-example-clean.pct"])
        #expect(run.stdout.isEmpty && run.status == 0)
    }
}

@Suite struct FindingLimitAndWordingTests {
    @Test func maxFindingsKeepsTheFirstAndCountsTheRest() throws {
        // Three redundant write-backs: three notes.
        let trace = """
            powercut-trace 1
            pmem 0x1000 0x1000
            op 1 begin dst=0x1000 len=8 contract=persist
            store 0x1000 8
            clwb 0x1000
            clwb 0x1000
            clwb 0x1000
            clwb 0x1000
            sfence
            op 1 end

            """
        let all = try powercut(["check", "--format", "brief", "-"], stdin: trace)
        #expect(all.stdout.split(separator: "\n").count { $0.contains("redundant-flush") } == 3)
        let run = try powercut(["check", "--format", "brief", "--max-findings", "1", "-"], stdin: trace)
        #expect(run.stdout.split(separator: "\n").count { $0.contains("redundant-flush") } == 1)
        #expect(run.stdout.hasSuffix("note findings-omitted findings=2\n"))
        let text = try powercut(["check", "--max-findings", "1", "-"], stdin: trace)
        #expect(text.stdout.contains("note: findings-omitted: 2 more findings not listed (2 notes)"))
        #expect(text.stdout.contains("0 errors, 0 warnings, 3 notes"))
        #expect(try powercut(["check", "--max-findings", "0", "-"], stdin: trace).status == 64)
    }

    @Test func recordHelpNamesTheDefaultContract() throws {
        let record = try powercut(["record", "--help"])
        // Help wraps lines: compare with runs of white space as one space.
        let help = record.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        #expect(help.contains("--contract <contract> The routine's contract: flushcache, persist or none. (values: flushcache, persist, none; default: flushcache)"))
    }
}
