import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct JUnitReportTests {
    var keepOps: ReplayOptions {
        var o = ReplayOptions()
        o.keepOps = true
        return o
    }

    @Test func oneCasePerOpWithTheRuleAsFailureType() throws {
        let t = try checked("""
            pmem 0x10000 0x1000
            op 1 begin dst=0x10000 len=8 name=good contract=persist
            ntstore 0x10000 8
            sfence
            op 1 end
            op 2 begin dst=0x10100 len=3 name=a<b>&"c'
            store 0x10100 3
            op 2 end
            sfence
            clwb 0x10200
            durable 0x90000 1
            """, file: "t&1.pct", options: keepOps)
        let xml = JUnitReport().render(Triage([t]))
        let doc = try XMLDocument(xmlString: xml, options: [])
        let root = try #require(doc.rootElement())
        #expect(root.name == "testsuites")
        #expect(root.attribute(forName: "tests")?.stringValue == "3" && root.attribute(forName: "failures")?.stringValue == "2")
        let suite = try #require(root.elements(forName: "testsuite").first)
        #expect(suite.attribute(forName: "name")?.stringValue == "t&1.pct")
        let cases = suite.elements(forName: "testcase")
        #expect(cases.map { $0.attribute(forName: "name")?.stringValue } == ["op 1 (good)", "op 2 (a<b>&\"c')", "outside ops"])
        #expect(cases[0].elements(forName: "failure").isEmpty)
        let failure = try #require(cases[1].elements(forName: "failure").first)
        #expect(failure.attribute(forName: "type")?.stringValue == "dirty-at-return")
        #expect(failure.attribute(forName: "message")?.stringValue == "op 2 (a<b>&\"c') returned at #6 with 3 bytes dirty in the cache (and 1 more finding)")
        #expect(failure.stringValue?.contains("error: not-durable: 3 bytes of op 2 (a<b>&\"c') not durable at its drain point, #7\n") == true)
        let outside = try #require(cases[2].elements(forName: "failure").first)
        #expect(outside.attribute(forName: "type")?.stringValue == "not-durable")
        #expect(outside.stringValue?.contains("note: redundant-flush") == true, "the case's notes go with its failure")
    }

    @Test func warningsOfAPassingCaseGoToSystemOut() throws {
        let t = try checked("""
            pmem 0x10000 0x1000
            op 1 begin dst=0x10000 len=8 name=copy
            ntstore 0x10000 8
            sfence
            op 1 end
            """, options: keepOps)
        let doc = try XMLDocument(xmlString: JUnitReport().render(Triage([t])), options: [])
        let c = try #require(doc.rootElement()?.elements(forName: "testsuite").first?.elements(forName: "testcase").first)
        #expect(c.elements(forName: "failure").isEmpty)
        #expect(c.elements(forName: "system-out").first?.stringValue?.contains("warning: missing-drain") == true)
    }

    @Test func everythingIsEscaped() throws {
        let weird = "a&b<c>\"d'e\u{1}\u{1b}[0m\ttab\nline\u{FFFE}é"
        let suite = JUnitSuite(name: weird, properties: [(weird, weird)], cases: [
            JUnitCase(classname: weird, name: weird, failure: .init(type: weird, message: weird, text: weird), output: weird),
        ])
        let xml = JUnitReport().render(suites: [suite], name: weird)
        let doc = try XMLDocument(xmlString: xml, options: [])
        let c = try #require(doc.rootElement()?.elements(forName: "testsuite").first?.elements(forName: "testcase").first)
        let shown = "a&b<c>\"d'e\\u{1}\\u{1b}[0m\ttab\nline\\u{fffe}é"
        #expect(c.attribute(forName: "name")?.stringValue == shown)
        #expect(c.elements(forName: "failure").first?.attribute(forName: "message")?.stringValue == shown)
        #expect(c.elements(forName: "failure").first?.stringValue == shown)
    }

    /// A trace replayed with an `OpSeries` spool prints the same document as one whose
    /// ops were kept: two threads' ops interleaved, named ops, failing and passing ops,
    /// a finding outside every op.
    @Test func opsReadBackFromASpoolGiveTheSameDocument() throws {
        let body = """
            pmem 0x10000 0x1000
            op 1 begin dst=0x10000 len=8 name=first contract=persist thread=1
            op 2 begin dst=0x10100 len=8 contract=flushcache thread=2
            store 0x10000 8 thread=1
            ntstore 0x10100 8 thread=2
            op 2 end thread=2
            op 1 end thread=1
            op 3 begin dst=0x10200 len=8 contract=persist thread=1
            store 0x10200 8 thread=1
            clwb 0x10200 thread=1
            sfence thread=1
            op 3 end thread=1
            sfence thread=2
            op 4 begin dst=0x10300 len=4 contract=persist name=wide
            store 0x10308 4
            op 4 end
            durable 0x10400 4
            """
        let kept = try checked(body, file: "two.pct", options: keepOps)
        let reader = try TraceReader(text: "powercut-trace 1\n" + body, name: "two.pct")
        let ops = OpSpool()
        let replayer = Replayer(header: reader.header, observer: ops.observer())
        var batch = EventBatch()
        while try reader.read(into: &batch, max: 3) { replayer.apply(batch) }
        let result = replayer.finish(names: reader.names)
        try ops.check()
        ops.names = reader.names
        #expect(result.ops.isEmpty && ops.endedCount == 4)
        let streamed = CheckedTrace(file: "two.pct", form: reader.form, header: reader.header, stacks: reader.stacks, result: result)
        let out = Spool(memoryLimit: 64)
        let log = OpLog()
        try log.add(ops)
        try JUnitReport().render(Triage([streamed, kept]), ops: log, to: out)
        let expected = JUnitReport().render(Triage([kept, kept]))
        #expect(try out.text() == expected)
        #expect(expected.contains("name=\"op 4 (wide)\"") && expected.contains("name=\"op 1 (first)\""))
    }
}
