import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct GitHubReportTests {
    @Test func annotationsPointAtTheTraceLineWithoutASymbolizer() throws {
        let body = """
            pmem 0x10000 0x1000
            op 1 begin dst=0x10000 len=3 name=copy,with:odd%chars
            store 0x10000 3
            op 1 end
            sfence
            clwb 0x10800
            """
        var triage = Triage([try checked(body, file: "dir/t,1.pct")])
        triage.eventLines = [TraceLines.lines(of: [1, 3, 4, 5], in: Array(("powercut-trace 1\n" + body).utf8))]
        let lines = GitHubReport().render(triage).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("::error file=dir/t%2C1.pct,line=4,title=powercut dirty-at-return::op 1 (copy,with:odd%25chars) returned at #2 with 3 bytes dirty in the cache%0A   op 1"))
        #expect(lines[1].hasPrefix("::error file=dir/t%2C1.pct,line=4,title=powercut not-durable::3 bytes of op 1"))
        #expect(lines[2].hasPrefix("::notice file=dir/t%2C1.pct,line=7,title=powercut redundant-flush::clwb #4 of line 0x10800"))
    }

    @Test func aSymbolizedFrameIsTheAnnotationsPlace() throws {
        let t = try checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000))
        let lookup = FakeLookup(places: ["libpmem.so.1+0x1a2c": SourcePlace(function: "memcpy_flushcache", file: "src/flush.c", line: 88)])
        let out = GitHubReport().render(Triage([t], frames: FrameResolver(lookup)))
        #expect(out.hasPrefix("::error file=src/flush.c,line=88,title=powercut dirty-at-return::"))
        #expect(out.contains("%0A      at 0x7f0000001a2c: memcpy_flushcache (flush.c:88)%0A"))
    }

    @Test func knownAndSuppressedFindingsGetNoAnnotation() throws {
        let t = try checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000))
        let all = Baseline(fingerprints: Set(t.result.findings.map { Fingerprint($0, in: t).hash }))
        #expect(GitHubReport().render(Triage([t], baseline: all)) == "")
    }

    @Test func eventLinesSkipHeadersCommentsAndStacks() {
        let text = "powercut-trace 1\n# c\npmem 0 0x100\n\n  store 0 1 # #0\nstack 1 0x1\r\nsfence\r\n   # store\nop 1 begin dst=0 len=1\n"
        #expect(TraceLines.lines(of: [0, 1, 2, 9], in: Array(text.utf8)) == [0: 5, 1: 7, 2: 9])
    }
}
