import Testing
@testable import PowercutSweep

@Suite struct GridTests {
    @Test func theDefaultGridIsTheIssuesGrid() {
        let g = SweepGrid.default
        #expect(g.dstOffsets == Array(0...63) && g.srcOffsets == [0])
        #expect(g.sizes == Array(0...256) + [511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097])
        #expect(g.count == 64 * 266)
    }

    @Test func listsAndRangesParseAndFormatBack() throws {
        #expect(try SweepGrid.parseList("8-10,1,0x10,9") == [1, 8, 9, 10, 16])
        #expect(SweepGrid.format([1, 8, 9, 10, 16]) == "1,8-10,16")
        #expect(throws: SweepGrid.ParseError.self) { try SweepGrid.parseList("5-2") }
        #expect(throws: SweepGrid.ParseError.self) { try SweepGrid.parseList("a") }
        #expect(throws: SweepGrid.ParseError.self) { try SweepGrid.parseList("1,,2") }
        #expect(throws: SweepGrid.ParseError.self) { try SweepGrid.parseList("4096", max: 4095) }
    }

    @Test func patternsMergeNeighbouringOffsetsWithTheSameSizes() {
        func failing(_ d: UInt64, _ n: UInt64) -> CaseResult {
            var c = CaseResult(case: SweepCase(dstOffset: d, srcOffset: 0, size: n), status: .failing)
            c.atRisk = ["tail dirty": 1]
            c.rules = ["not-durable": 1]
            return c
        }
        let cases = [failing(62, 3), failing(62, 4), failing(63, 3), failing(63, 4), failing(60, 7)]
            + [CaseResult(case: SweepCase(dstOffset: 0, srcOffset: 0, size: 1), status: .clean)]
        let r = RoutineResult(routine: "r", contract: "flushcache", domain: "adr", cases: cases)
        let p = r.patterns
        #expect(p.count == 1 && p[0].cases == 5 && p[0].signature == "bytes at risk: tail dirty")
        #expect(p[0].rows.map { "\($0.dst) \($0.sizes)" } == ["[60] [7]", "[62, 63] [3, 4]"])
    }

    @Test func crashMessagesGroupDespiteAddresses() {
        var a = CaseResult(case: SweepCase(dstOffset: 1, srcOffset: 0, size: 1), status: .error, message: "cannot decode 'x' at 0x7f12: f")
        var b = a
        b.dstOffset = 2
        b.message = "cannot decode 'x' at 0x7f99: f"
        a.atRisk = [:]
        #expect(a.signature == b.signature)
    }
}
