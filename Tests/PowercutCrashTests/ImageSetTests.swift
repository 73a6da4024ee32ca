import PowercutCrash
import PowercutModel
import PowercutTrace
import Testing

@Suite struct ImageSetTests {
    let pool = PmemRange(base: 0x1000, length: 0x1000, name: "pool")

    @Test func anUnflushedStoreMayPersistEarly() throws {
        var b = TraceBuilder(pmem: [pool])
        b.store(0x1000, [1, 2, 3, 4])
        let walked = try walk(b.trace, selection: .all)
        // Cut 1 (after the store, the end): the old zeros or the store, by eviction.
        let end = walked.images.last!
        #expect(Set(end.map { Array($0.prefix(4)) }) == [[0, 0, 0, 0], [1, 2, 3, 4]])
    }

    @Test func aStoreOfTheBytesAlreadyThereAddsNoImage() throws {
        var b = TraceBuilder(pmem: [pool], initial: [(0x1000, [7, 7])])
        b.store(0x1000, [7, 7])
        let walked = try walk(b.trace, selection: .all)
        #expect(walked.cuts.last!.count == .exact(1))
        #expect(walked.images.last!.first!.prefix(2) == [7, 7])
    }

    @Test func aFenceOfAnotherThreadDoesNotGuaranteeANonTemporalWrite() throws {
        var b = TraceBuilder(pmem: [pool])
        b.store(0x1000, [1], nt: true, thread: 1)
        b.event(.sfence, thread: 0)
        b.event(.sfence, thread: 1)
        let walked = try walk(b.trace, selection: .all)
        #expect(walked.cuts.map { $0.count } == [.exact(1), .exact(2), .exact(2), .exact(1)])
    }

    @Test func clflushGuaranteesAtOnceUnlessStrict() throws {
        var b = TraceBuilder(pmem: [pool])
        b.store(0x1000, [1])
        b.event(.clflush, 0x1000)
        b.store(0x1040, [2])
        var strict = ReplayOptions()
        strict.strictClflush = true
        #expect(try walk(b.trace, selection: .all).cuts[2].count == .exact(1))
        #expect(try walk(b.trace, selection: .all, options: strict).cuts[2].count == .exact(2))
    }

    @Test func aNonTemporalCopyOfFourKiBBeforeItsFenceHasTwoToThe512Images() throws {
        var b = TraceBuilder(pmem: [pool])
        for i in 0..<512 { b.store(0x1000 + UInt64(i) * 8, [UInt8(i & 0xff) | 1, 1, 1, 1, 1, 1, 1, 1], nt: true) }
        b.event(.sfence)
        let walked = try walk(b.trace, selection: .fences, plan: ImagePlan(maxImages: 10))
        #expect(walked.cuts.count == 2)
        #expect(walked.cuts[0].count == .rounded(log2: 512))
        #expect(walked.cuts[0].count.description == "2^512.0")
        #expect(walked.cuts[1].count == .exact(1))
        #expect(!walked.cuts[0].everyImage)
        #expect(walked.images[0].count == 10)
    }

    @Test func countsAreExactUpTo10To18() {
        let big = ImageCount.exact(1_000_000_000) * .exact(1_000_000_000)
        #expect(big == .exact(1_000_000_000_000_000_000))
        let over = big * .exact(2)
        #expect(over.isRounded)
        #expect(over.description == "2^60.8")
    }

    @Test func theDepthEnumerationKeepsAtMostDLinesOffTheirNewestContent() throws {
        var b = TraceBuilder(pmem: [pool])
        for line in 0..<6 { b.store(0x1000 + UInt64(line) * 64, [1]); b.store(0x1000 + UInt64(line) * 64, [2]) }
        // 6 lines with 3 contents each: 729 images; depth 2 lists 1 + 6*2 + 15*4 = 73.
        let walked = try walk(b.trace, selection: .fences, plan: ImagePlan(maxImages: 100, depth: 2))
        let cut = walked.cuts[0]
        #expect(cut.count == .exact(729))
        #expect(cut.enumeration == .depth(2))
        let images = walked.images[0]
        #expect(images.count == 73)
        #expect(Set(images).count == 73)
        let newest = images[0]
        for image in images {
            let off = (0..<6).filter { image[$0 * 64] != newest[$0 * 64] }.count
            #expect(off <= 2)
        }
        // The same trace gives the same order.
        #expect(try walk(b.trace, selection: .fences, plan: ImagePlan(maxImages: 100, depth: 2)).images[0] == images)
        // Cut short at the limit.
        let short = try walk(b.trace, selection: .fences, plan: ImagePlan(maxImages: 20, depth: 2))
        #expect(short.images[0].count == 20 && short.cuts[0].truncated)
    }

    @Test func randomImagesAreDistinctAndFollowTheSeed() throws {
        var b = TraceBuilder(pmem: [pool])
        for line in 0..<8 { b.store(0x1000 + UInt64(line) * 64, [1]); b.store(0x1000 + UInt64(line) * 64, [2]) }
        let plan = ImagePlan(maxImages: 100, depth: 2, random: (50, 7))
        let a = try walk(b.trace, selection: .fences, plan: plan)
        #expect(a.images[0].count == 50 && Set(a.images[0]).count == 50)
        #expect(try walk(b.trace, selection: .fences, plan: plan).images[0] == a.images[0])
        let other = try walk(b.trace, selection: .fences, plan: ImagePlan(maxImages: 100, depth: 2, random: (50, 8)))
        #expect(other.images[0] != a.images[0])
    }

    @Test func aStoreWithoutDataIntoTrackedMemoryIsAnError() throws {
        var b = TraceBuilder(pmem: [pool, PmemRange(base: 0x9000, length: 0x100, isVolatile: true)])
        b.storeWithoutData(0x9000, 8)  // volatile: not part of an image
        b.storeWithoutData(0x5000, 8)  // undeclared
        b.storeWithoutData(0x1008, 8)
        b.storeWithoutData(0x1010, 8)
        #expect {
            _ = try walk(b.trace)
        } throws: { error in
            let e = error as! CrashError
            return e.exitStatus == 65 && e.message.hasPrefix("event #2 (store 0x1008 8) writes tracked memory without data=")
        }
    }

    @Test func initRecordsGiveTheContentBeforeTheTrace() throws {
        var b = TraceBuilder(pmem: [pool], initial: [(0x1004, [9, 9, 9, 9])])
        b.store(0x1000, [1, 1, 1, 1, 1, 1])
        let walked = try walk(b.trace, selection: .all)
        #expect(Set(walked.images.last!.map { Array($0.prefix(8)) }) == [[0, 0, 0, 0, 9, 9, 9, 9], [1, 1, 1, 1, 1, 1, 9, 9]])
    }

    @Test func aWriteBackCarriesOnlyTheWritesBeforeIt() throws {
        var b = TraceBuilder(pmem: [pool])
        b.store(0x1000, [1])
        b.event(.clwb, 0x1000)
        b.store(0x1001, [2])
        b.event(.sfence)
        let walked = try walk(b.trace, selection: .all)
        // After the fence: #0 is guaranteed, #2 is not.
        #expect(Set(walked.images.last!.map { Array($0.prefix(2)) }) == [[1, 0], [1, 2]])
    }

    @Test func cutsAtMarksOpsFencesOrEverywhere() throws {
        var b = TraceBuilder(pmem: [pool])
        b.op(1, begin: true)                     // #0
        b.store(0x1000, [1])                     // #1
        b.event(.clwb, 0x1000)                   // #2
        b.op(1, begin: false)                    // #3
        b.mark()                                 // #4
        b.event(.sfence)                         // #5: drain point of op 1; guarantees #1
        b.op(2, begin: true, contract: .persist) // #6
        b.store(0x1040, [2])                     // #7
        b.event(.clflush, 0x1040)                // #8: guarantees #7
        b.op(2, begin: false)                    // #9
        b.event(.sfence)                         // #10: guarantees nothing new
        #expect(try walk(b.trace, selection: .fences).cuts.map(\.cut) == [5, 8, 11])
        #expect(try walk(b.trace, selection: .marks).cuts.map(\.cut) == [5, 11])
        #expect(try walk(b.trace, selection: .ops).cuts.map(\.cut) == [6, 10, 11])
        #expect(try walk(b.trace, selection: .all).cuts.map(\.cut) == Array(0...11))
        let fences = try walk(b.trace, selection: .fences)
        #expect(fences.cuts.map(\.count) == [.exact(2), .exact(2), .exact(1)])
        #expect(fences.cuts[0].before?.kind == .mark && fences.cuts[0].after?.kind == .sfence)
    }
}
