import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct BaselineTests {
    let old = try! checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000), file: "old.pct")

    @Test func aWrittenBaselineReadsBackAndIsReadable() throws {
        let text = Triage([old]).baselineText
        let lines = text.split(separator: "\n")
        #expect(lines.first == "powercut-baseline 1")
        let entries = lines.filter { !$0.hasPrefix("#") && !$0.hasPrefix("powercut-baseline") }
        #expect(entries.count == 2)
        let print = Fingerprint(old.result.findings[0], in: old)
        #expect(entries.contains("\(print.hash)  dirty-at-return  memcpy_flushcache  tail dirty by libpmem.so.1+0x1a2c  at libpmem.so.1+0x1a2c  (old.pct)"))
        let baseline = try Baseline.parse(text, file: "b.txt")
        #expect(baseline.fingerprints.count == 2)
        #expect(Triage([old], baseline: baseline).reportedErrors == 0)
        // Sorted by note: the same findings in another order give the same file.
        #expect(Baseline.render([(print, "x.pct"), (print, "y.pct")]).filter { $0 == "\n" }.count == 5)
    }

    @Test func aNewFindingFailsAndAnOldOneDoesNot() throws {
        let baseline = try Baseline.parse(Triage([old]).baselineText, file: "b.txt")
        // The same bug recorded again elsewhere, plus a new op that leaves its head dirty.
        let now = try checked(tailBugTrace(module: 0x5555_0000_0000, pmem: 0x7ffe_0000_0000) + """

            op 2 begin dst=0x7ffe00000105 len=3 name=pmem_memcpy_nodrain
            store 0x7ffe00000105 3
            op 2 end
            sfence
            """, file: "new.pct")
        let triage = Triage([now], baseline: baseline)
        #expect(triage.entries[0].map(\.status) == [.known, .known, .reported, .reported])
        #expect(triage.reportedErrors == 2 && triage.knownCount == 2)
        #expect(triage.reportedTraces[0].result.findings.map { $0.op?.name } == ["pmem_memcpy_nodrain", "pmem_memcpy_nodrain"])
        #expect(triage.countsNote(baseline: true, suppressions: false) == " (2 known from the baseline)")
    }

    @Test func malformedBaselinesNameTheLine() {
        func problem(_ text: String) -> String? {
            do { _ = try Baseline.parse(text, file: "b.txt"); return nil } catch { return error.description }
        }
        #expect(problem("") == "b.txt:1: empty baseline: expected 'powercut-baseline 1' first (write one with --write-baseline FILE)")
        #expect(problem("# c\n0123456789abcdef x\n") == "b.txt:2: expected 'powercut-baseline 1' first, found '0123456789abcdef x' (write a baseline with --write-baseline FILE)")
        #expect(problem("powercut-baseline 2\n") == "b.txt:1: unsupported baseline version '2' (this powercut reads 'powercut-baseline 1')")
        #expect(problem("powercut-baseline 1\n\n0123456789abcdef ok\nnot-a-print rest\n") == "b.txt:4: expected a fingerprint of 16 hex digits at the start of the line, found 'not-a-print'")
        #expect(problem("powercut-baseline 1\r\n# note\r\n0123456789ABCDEF  any note\r\n") == nil, "CRLF, comments and upper-case hex are fine")
    }
}
