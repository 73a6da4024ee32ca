import Foundation
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutExplain
import PowercutSymbolize

/// The package root (where Traces/ lives).
let packageRoot: String = {
    var path = #filePath
    while path != "/" && path != "" && !FileManager.default.fileExists(atPath: path + "/Package.swift") {
        path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
    }
    return path
}()

/// An in-memory trace from the body of a text trace.
func explainTrace(_ body: String) throws -> Trace {
    try Trace(reader: try TraceReader(text: "powercut-trace 1\n" + body, name: "t.pct"))
}

func explained(_ body: String, _ selector: ExplainSelector = .firstError, limit: Int = 200,
               options: ReplayOptions = ReplayOptions()) throws -> Explanation {
    try Explainer(options: options, limit: limit).explain(try explainTrace(body), file: "t.pct", selector: selector)
}

/// The corpus trace with the tail's write-back missing.
let tailNotWrittenBack = """
    pmem 0x10000 0x1000 name=pool
    stack 1 0x401a2c 0x4020f0
    op 1 begin dst=0x1003d len=13 name=memcpy_flushcache
    store 0x1003d 3 stack=1
    clwb 0x1003d
    ntstore 0x10040 8
    store 0x10048 2 stack=1
    op 1 end
    sfence
    """

@Suite struct ExplainTests {
    @Test func aFindingIsFollowedToItsDrainPoint() throws {
        let ex = try explained(tailNotWrittenBack, .finding(2))
        #expect(ex.findingNumber == 2 && ex.findingCount == 2)
        #expect(ex.title == "error: not-durable: 2 bytes of op 1 (memcpy_flushcache) not durable at its drain point, #6")
        #expect(ex.chosen.map(\.start) == [0x10048] && ex.chosen.map(\.length) == [2])
        #expect(ex.lines == [0x10040])
        // Only what touches line 0x10040, the op's markers and the drain are told.
        #expect(ex.steps.map(\.event.seq) == [0, 3, 4, 5, 6])
        #expect(ex.promise == Promise(event: 6, cut: 7, what: "the drain point of op 1 (memcpy_flushcache)", place: "the fence at #6"))
        #expect(ex.atRisk.map(\.summary) == ["0x10048-0x10049 (2 bytes, tail): dirty, from store #4"])
        #expect(ex.atRisk.map(\.stack) == [1] && ex.atRisk.map(\.missing) == [.writeBackAndFence])
        #expect(ex.fixes == ["write back line 0x10040 after store #4 and before the fence at #6 (inside op 1 (memcpy_flushcache), before its return at #5: a flushcache routine must return nothing dirty)"])
        // The states after the store of the tail: the nt bytes wc, the tail dirty.
        let store = try #require(ex.steps.first { $0.event.seq == 4 })
        #expect(store.lines.count == 1 && store.lines[0].line == 0x10040)
        #expect(store.lines[0].runs == [
            StateRun(start: 0x10040, length: 8, state: .wc, store: 3, lastStore: 3, chosen: false),
            StateRun(start: 0x10048, length: 2, state: .dirty, store: 4, lastStore: 4, chosen: true),
        ])
        let drain = try #require(ex.steps.last)
        #expect(drain.isPromise && drain.lines[0].runs.map(\.state) == [.durable, .dirty])
        #expect(drain.verdicts == ["error: not-durable: 2 bytes of op 1 (memcpy_flushcache) not durable at its drain point, #6"])
    }

    @Test func theDefaultIsTheFirstErrorAndTheStoryEndsAtItsPromise() throws {
        let ex = try explained(tailNotWrittenBack)
        #expect(ex.findingNumber == 1 && ex.finding?.rule == .dirtyAtReturn)
        #expect(ex.promise?.event == 5 && ex.promise?.place == "the return of op 1 at #5")
        #expect(ex.steps.last?.event.seq == 5 && ex.eventsAfterPromise == 1)
        #expect(ex.fixes == ["write back line 0x10040 after store #4 and before the return of op 1 at #5"])
    }

    @Test func theFixNamesWhatEachStateLacks() throws {
        // flushing: a persist op written back but never fenced.
        let flushing = try explained("""
            pmem 0 0x100
            op 1 begin dst=0 len=8 contract=persist
            store 0 8
            clwb 0
            op 1 end
            """)
        #expect(flushing.fixes == ["add a fence after write-back #2, before the return of op 1 at #3"])
        // wc: a non-temporal store asserted durable with no fence.
        let wc = try explained("""
            pmem 0 0x100
            ntstore 0 8
            durable 0 8
            """)
        #expect(wc.fixes == ["add a fence after non-temporal store #0, before the durable assertion at #1"])
        // queued: wpq without the flush hint.
        let queued = try explained("""
            domain wpq
            pmem 0x1000 0x1000
            op 1 begin dst=0x1000 len=8
            store 0x1000 8
            clwb 0x1000
            op 1 end
            sfence
            """)
        #expect(queued.fixes == ["add a flush-hint write (wpqflush) and a fence after #4, before the end of the trace"])
        // dirty in two lines with one last store: one sentence per line.
        let dirty = try explained("""
            pmem 0 0x1000
            op 1 begin dst=0x3c len=8 contract=persist
            store 0x3c 8
            op 1 end
            """)
        #expect(dirty.fixes == ["write back lines 0x0-0x40 after store #1 and before the return of op 1 at #2"])
    }

    @Test func aByteIsFollowedEvenWithoutAFinding() throws {
        let ex = try explained("""
            pmem 0x1000 0x1000
            store 0x1000 8
            store 0x1040 8
            clwb 0x1000
            sfence
            """, .byte(0x1004))
        #expect(ex.finding == nil && ex.promise == nil && ex.title == "byte 0x1004")
        #expect(ex.steps.map(\.event.seq) == [0, 2, 3])
        #expect(ex.atRisk.isEmpty)
        #expect(ex.rows.map(\.label) == ["line 0x1000", "0x1004"])
        #expect(ex.steps.map { $0.rows } == [[.dirty, .dirty], [.flushing, .flushing], [.durable, .durable]])
    }

    @Test func anOpIsFollowedLineByLine() throws {
        let ex = try explained(tailNotWrittenBack, .op(1))
        #expect(ex.lines == [0x10000, 0x10040])
        #expect(ex.finding?.rule == .notDurable && ex.promise?.event == 6)
        // One row per line, and one for the bytes lost.
        #expect(ex.rows.map(\.label) == ["line 0x10000", "line 0x10040", "0x10048-0x10049 tail"])
        #expect(ex.rows.map(\.lost) == [false, false, true])
        #expect(ex.steps.map(\.event.seq) == [0, 1, 2, 3, 4, 5, 6])
    }

    @Test func selectionsThatDoNotExistAreUsageErrors() throws {
        #expect(throws: ExplainError.noSuchFinding(asked: 9, count: 2)) { try explained(tailNotWrittenBack, .finding(9)) }
        #expect(throws: ExplainError.noSuchOp(7, known: [1])) { try explained(tailNotWrittenBack, .op(7)) }
        do {
            _ = try explained(tailNotWrittenBack, .byte(0x5))
            Issue.record("a byte outside pmem must be refused")
        } catch let error as ExplainError {
            #expect(error.description == "--byte 0x5: not in any pmem range of the trace (0x10000-0x10fff)")
        }
        #expect(ExplainError.noSuchFinding(asked: 9, count: 2).description.contains("the trace has 2 findings"))
    }

    @Test func aCleanTraceHasNothingToExplain() throws {
        let ex = try explained("""
            pmem 0 0x100
            op 1 begin dst=0 len=8
            ntstore 0 8
            op 1 end
            sfence
            """)
        #expect(ex.isEmpty)
        #expect(ExplainTextReport().render(ex).contains("no error finding to explain (0 warnings, 0 notes)"))
    }

    @Test func longStoriesKeepTheirEnds() throws {
        var body = "pmem 0 0x1000\nop 1 begin dst=0 len=64 contract=persist\n"
        for i in 0..<32 { body += "ntstore \(i * 2) 2\n" }
        body += "op 1 end\n"
        let ex = try explained(body, limit: 6)
        #expect(ex.steps.map(\.event.seq) == [0, 1, 2, 31, 32, 33])
        guard case .gap(let first, let last, let count, let elided, _, _) = ex.items[3] else {
            Issue.record("expected the middle left out")
            return
        }
        #expect(first == 3 && last == 30 && count == 28 && elided)
        #expect(ExplainTextReport().render(ex).contains("… #3-#30: 28 more events left out (--limit 0 tells them all)"))
    }

    @Test func theTextIsTheGoldenStory() throws {
        // The corpus trace and its golden story (Traces/), which the command's test shares.
        let trace = "Traces/adr-tail-not-written-back.pct"
        let reader = try TraceReader(path: packageRoot + "/" + trace)
        let ex = try Explainer(options: ReplayOptions(), limit: 200).explain(try Trace(reader: reader), file: trace, selector: .finding(2))
        let golden = try String(contentsOfFile: packageRoot + "/Traces/adr-tail-not-written-back.finding-2.explain", encoding: .utf8)
        #expect(ExplainTextReport().render(ex) == golden)
    }

    @Test func aFindingInTheLastLineOfTheAddressSpaceIsExplained() throws {
        // Once an arithmetic-overflow trap: the line's end is 2^64.
        let body = """
            pmem 0xffffffffffffff00 0x100
            op 1 begin dst=0xffffffffffffffc0 len=64 contract=flushcache
            store 0xfffffffffffffff8 8
            op 1 end
            sfence
            """
        let ex = try explained(body)
        #expect(ex.lines == [0xffff_ffff_ffff_ffc0])
        #expect(ex.atRisk.map(\.summary) == ["0xfffffffffffffff8-0xffffffffffffffff (8 bytes, body): dirty, from store #1"])
        #expect(ex.rows.map(\.label) == ["line 0xffffffffffffffc0", "0xfffffffffffffff8-0xffffffffffffffff body"])
        let byte = try explained(body, .byte(0xffff_ffff_ffff_ffff))
        #expect(byte.chosen.map(\.length) == [1] && byte.atRisk.map(\.length) == [1])
        #expect(ExplainTextReport().render(ex).contains("fix: write back line 0xffffffffffffffc0 after store #1"))
        #expect(TimelinePicture(ex).svg().contains("0xfffffffffffffff8-0xffffffffffffffff body"))
    }

    @Test func aDeclaredLengthDoesNotDecideWhatIsFollowed() throws {
        // A 16 TiB destination and assertion with one store: only the stored line is
        // followed (it was 2^38 lines, seconds and gigabytes, before).
        let body = """
            pmem 0 0x100000000000
            op 1 begin dst=0 len=0x100000000000 contract=persist
            store 8 8
            op 1 end
            durable 0 0x100000000000
            """
        for selector in [ExplainSelector.firstError, .finding(2), .op(1)] {
            let ex = try explained(body, selector)
            #expect(ex.lines == [0], "\(selector)")
            #expect(ex.atRisk.map(\.start) == [8] && ex.atRisk.map(\.length) == [8], "\(selector)")
        }
        // A small destination is still followed line by line, stored to or not.
        let small = try explained("pmem 0 0x1000\nop 1 begin dst=0 len=256 contract=persist\nstore 8 8\nop 1 end\n", .op(1))
        #expect(small.lines == [0, 0x40, 0x80, 0xc0])
    }
}
