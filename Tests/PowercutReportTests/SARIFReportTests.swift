import Foundation
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct SARIFReportTests {
    let bug = try! checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000), file: "traces/tail bug.pct")

    func document(_ triage: Triage) throws -> [String: Any] {
        let text = SARIFReport(toolVersion: "9.9.9").render(triage)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func results(_ doc: [String: Any]) -> [[String: Any]] {
        ((doc["runs"] as! [[String: Any]])[0]["results"] as! [[String: Any]])
    }

    @Test func everyRuleIsDescribedInAFixedOrder() throws {
        let doc = try document(Triage([bug]))
        #expect(doc["version"] as? String == "2.1.0")
        let driver = ((doc["runs"] as! [[String: Any]])[0]["tool"] as! [String: Any])["driver"] as! [String: Any]
        #expect(driver["name"] as? String == "powercut" && driver["version"] as? String == "9.9.9")
        let rules = driver["rules"] as! [[String: Any]]
        #expect(rules.map { $0["id"] as? String } == Rule.allCases.map(\.rawValue))
        for (r, rule) in zip(rules, Rule.allCases) {
            #expect((r["shortDescription"] as? [String: Any])?["text"] as? String == rule.summary)
            #expect((r["fullDescription"] as? [String: Any])?["text"] as? String == rule.help)
            #expect(((r["help"] as? [String: Any])?["text"] as? String)?.contains(rule.help) == true)
            #expect((r["defaultConfiguration"] as? [String: Any])?["level"] as? String == rule.severity.rawValue)
        }
    }

    @Test func aResultNamesRuleTitleModuleOffsetStackAndFingerprint() throws {
        let triage = Triage([bug])
        let r = results(try document(triage))
        #expect(r.count == 2)
        let first = r[0]
        #expect(first["ruleId"] as? String == "dirty-at-return" && first["ruleIndex"] as? Int == 1 && first["level"] as? String == "error")
        let message = (first["message"] as! [String: Any])["text"] as! String
        #expect(message.hasPrefix(bug.result.findings[0].headline + ". "))
        #expect(message.contains("(2 bytes, tail): dirty, from store #4; missing: a write-back"))
        let location = ((first["locations"] as! [[String: Any]])[0]["physicalLocation"]) as! [String: Any]
        #expect((location["artifactLocation"] as! [String: Any])["uri"] as? String == "file:///usr/lib/libpmem.so.1")
        let address = location["address"] as! [String: Any]
        #expect(address["relativeAddress"] as? Int == 0x1a2c && address["offsetFromParent"] as? Int == 0x1a2c)
        #expect(address["name"] as? String == "libpmem.so.1+0x1a2c" && address["parentIndex"] as? Int == 0)
        let stacks = first["stacks"] as! [[String: Any]]
        #expect(stacks.count == 1)
        #expect((stacks[0]["frames"] as! [[String: Any]]).map { $0["module"] as? String } == ["libpmem.so.1", "libpmem.so.1"])
        let prints = first["partialFingerprints"] as! [String: String]
        #expect(prints == ["powercut/v2": triage.entries[0][0].fingerprint.hash])
        let properties = first["properties"] as! [String: Any]
        #expect(properties["cut"] as? Int == 6 && properties["bytes"] as? Int == 2 && properties["event"] as? Int == 5)
        #expect((properties["ranges"] as! [[String: Any]])[0]["position"] as? String == "tail")
        #expect(first["baselineState"] == nil && first["suppressions"] == nil)
        // The trace as the analysis target, URI-encoded.
        #expect((first["analysisTarget"] as! [String: Any])["uri"] as? String == "traces/tail%20bug.pct")
    }

    @Test func aSymbolizedFramePointsAtTheSourceLine() throws {
        let lookup = FakeLookup(places: ["libpmem.so.1+0x1a2c": SourcePlace(function: "memcpy_flushcache", file: "src/flush.c", line: 88)])
        let r = results(try document(Triage([bug], frames: FrameResolver(lookup))))
        let location = (r[0]["locations"] as! [[String: Any]])[0]
        let physical = location["physicalLocation"] as! [String: Any]
        #expect((physical["artifactLocation"] as! [String: Any])["uri"] as? String == "src/flush.c")
        #expect((physical["region"] as! [String: Any])["startLine"] as? Int == 88)
        #expect((location["logicalLocations"] as! [[String: Any]])[0]["name"] as? String == "memcpy_flushcache")
    }

    @Test func withoutModulesTheTraceLineIsTheLocation() throws {
        let text = """
            pmem 0x10000 0x1000
            stack 1 0x401a2c
            op 1 begin dst=0x10000 len=8 contract=persist
            store 0x10000 8 stack=1
            op 1 end
            """
        var triage = Triage([try checked(text)])
        triage.eventLines = [TraceLines.lines(of: [1, 2], in: Array(("powercut-trace 1\n" + text).utf8))]
        let r = results(try document(triage))
        let physical = ((r[0]["locations"] as! [[String: Any]])[0]["physicalLocation"]) as! [String: Any]
        #expect((physical["artifactLocation"] as! [String: Any])["uri"] as? String == "t.pct")
        #expect((physical["region"] as! [String: Any])["startLine"] as? Int == 5)
        #expect((physical["address"] as! [String: Any])["absoluteAddress"] as? Int == 0x401a2c)
    }

    @Test func baselineAndSuppressionStatesAreMarked() throws {
        let baseline = Baseline(fingerprints: [Fingerprint(bug.result.findings[1], in: bug).hash])
        let supp = try SuppressionList.parse("{\n x\n powercut:dirty-at-return\n obj:*\n}\n", file: "ci.supp")
        let triage = Triage([bug], suppressions: SuppressionList(supp), baseline: baseline)
        let r = results(try document(triage))
        #expect(r.map { $0["baselineState"] as? String } == ["new", "unchanged"])
        let s = (r[0]["suppressions"] as! [[String: Any]])[0]
        #expect(s["kind"] as? String == "external" && s["status"] as? String == "accepted")
        #expect(s["justification"] as? String == "suppressed by 'x' (ci.supp:1)")
        #expect(r[1]["suppressions"] == nil)
    }

    @Test func everyVariantIsValidSARIF() throws {
        let lookup = FakeLookup(places: ["libpmem.so.1+0x1a2c": SourcePlace(function: "memcpy_flushcache", file: "/src/flush.c", line: 88),
                                         "libpmem.so.1+0x3000": SourcePlace(function: "caller")])
        let notes = try checked("""
            pmem 0x20000 0x1000 name=log
            stack 1 0x401a2c
            store 0x20010 4 stack=1
            durable 0x20010 4
            clwb 0x20100 stack=1
            durable 0x90000 8
            """, file: "-")
        let supp = try SuppressionList.parse("{\n x\n powercut:not-durable\n ...\n}\n", file: "ci.supp")
        for triage in [Triage([bug, notes]), Triage([bug, bug], frames: FrameResolver(lookup)),
                       Triage([notes, bug], suppressions: SuppressionList(supp), baseline: Baseline())] {
            let text = SARIFReport(toolVersion: "0.1.0").render(triage)
            let problem = try sarifSchemaProblem(text)
            #expect(problem == nil, "\(problem ?? "")")
        }
    }

    @Test func traceNoticesAreValidToolExecutionNotifications() throws {
        // Nothing checked, a store outside pmem, and three notes of which one is kept.
        let quiet = try checked("""
            pmem 0x1000 0x1000
            op 1 begin dst=0x1000 len=8 contract=none
            store 0x9000 8
            clwb 0x1000
            clwb 0x1000
            clwb 0x1000
            op 1 end
            """, file: "quiet.pct", options: { var o = ReplayOptions(); o.maxFindings = 1; return o }())
        let triage = Triage([bug, quiet])
        let doc = try document(triage)
        let run = (doc["runs"] as! [[String: Any]])[0]
        let invocations = try #require(run["invocations"] as? [[String: Any]])
        let notes = try #require(invocations[0]["toolExecutionNotifications"] as? [[String: Any]])
        #expect(notes.map { ($0["descriptor"] as? [String: Any])?["id"] as? String } == quiet.result.notices.map(\.id))
        #expect(notes.map { ($0["descriptor"] as? [String: Any])?["index"] as? Int } == [0, 1, 2])
        #expect(notes.map { ($0["properties"] as? [String: Any])?["trace"] as? String } == ["quiet.pct", "quiet.pct", "quiet.pct"])
        #expect(((notes[2]["message"] as? [String: Any])?["text"] as? String) == "quiet.pct: \(quiet.result.notices[2].message).")
        // A run with no notice has no invocation.
        #expect((try document(Triage([bug])))["runs"].flatMap { ($0 as? [[String: Any]])?[0]["invocations"] } == nil)
        let problem = try sarifSchemaProblem(SARIFReport(toolVersion: "0.1.0").render(triage))
        #expect(problem == nil, "\(problem ?? "")")
    }

    @Test func urisAreEncoded() {
        #expect(sarifURI("/usr/lib/lib x.so") == "file:///usr/lib/lib%20x.so")
        #expect(sarifURI("a/b#c?d%é.pct") == "a/b%23c%3Fd%25%C3%A9.pct")
    }
}
