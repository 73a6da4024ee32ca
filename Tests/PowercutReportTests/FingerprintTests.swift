import Foundation
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct FingerprintTests {
    let original = try! checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000))

    func prints(_ t: CheckedTrace, frames: FrameResolver = FrameResolver()) -> [Fingerprint] {
        t.result.findings.map { Fingerprint($0, in: t, frames: frames) }
    }

    @Test func namesRuleOpPositionStateAndStoreWithoutAddresses() throws {
        let p = prints(original)
        #expect(p.map(\.rule) == [.dirtyAtReturn, .notDurable])
        #expect(p[0].key == "powercut-fingerprint 2|dirty-at-return|memcpy_flushcache|flushcache|tail dirty by libpmem.so.1+0x1a2c")
        #expect(p[0].note == "dirty-at-return  memcpy_flushcache  tail dirty by libpmem.so.1+0x1a2c  at libpmem.so.1+0x1a2c")
        #expect(p[0].hash.count == 16 && p[0].hash.allSatisfy(\.isHexDigit))
        #expect(p[0].hash != p[1].hash)
        for f in p { #expect(!f.key.contains("7f"), "no raw address in \(f.key)") }
    }

    @Test func survivesASLRAnotherOpIDAndEarlierEvents() throws {
        // The same bug recorded again: module, stacks and pmem at other bases, the op
        // numbered differently and two unrelated events before it.
        let again = try checked(tailBugTrace(module: 0x5555_1234_5000, pmem: 0x7ffe_8000_0000, opID: 42,
                                             prefix: "sfence\nstore 0x7ffe80008000 8\n"))
        #expect(again.result.findings.map(\.event) != original.result.findings.map(\.event))
        #expect(prints(again).map(\.hash) == prints(original).map(\.hash))
        #expect(prints(again).map(\.key) == prints(original).map(\.key))
    }

    @Test func survivesAnotherSizeAndAlignment() throws {
        // The same missing tail write-back in a 40-byte copy to another alignment: the
        // offsets and lengths differ, the finding does not.
        let moved = try checked("""
            module /usr/lib/libpmem.so.1 0x7f0000000000 0x10000
            pmem 0x7f1000000000 0x10000 name=pool
            stack 1 0x7f0000001a2c 0x7f0000003000
            stack 2 0x7f0000001b00 0x7f0000003000
            op 1 begin dst=0x7f1000000123 len=40 name=memcpy_flushcache
            store 0x7f1000000123 29 stack=1
            clwb 0x7f1000000123
            ntstore 0x7f1000000140 8 stack=2
            store 0x7f1000000148 3 stack=1
            op 1 end
            sfence
            """)
        #expect(prints(moved).map(\.key) == prints(original).map(\.key))
        #expect(prints(moved).map(\.hash) == prints(original).map(\.hash))
    }

    @Test func aBaselineKnowsAFindingWhenItKnowsEachMissingWriteBack() throws {
        // Head and tail stranded at one size; only the head at another: each part was seen.
        let both = try checked("""
            module /usr/lib/libpmem.so.1 0x7f0000000000 0x10000
            pmem 0x7f1000000000 0x10000 name=pool
            stack 1 0x7f0000001a2c 0x7f0000003000
            op 1 begin dst=0x7f100000003d len=13 name=memcpy_flushcache
            store 0x7f100000003d 3 stack=1
            ntstore 0x7f1000000040 8
            store 0x7f1000000048 2 stack=1
            op 1 end
            sfence
            """)
        let headOnly = try checked("""
            module /usr/lib/libpmem.so.1 0x7f0000000000 0x10000
            pmem 0x7f1000000000 0x10000 name=pool
            stack 1 0x7f0000001a2c 0x7f0000003000
            op 1 begin dst=0x7f100000013e len=10 name=memcpy_flushcache
            store 0x7f100000013e 2 stack=1
            ntstore 0x7f1000000140 8
            op 1 end
            sfence
            """)
        let known = try Baseline.parse(Baseline.render(prints(both).map { ($0, "both.pct") }), file: "b")
        #expect(prints(both)[0].parts == ["head dirty by libpmem.so.1+0x1a2c", "tail dirty by libpmem.so.1+0x1a2c"])
        #expect(prints(headOnly).allSatisfy(known.contains))
        let tailOnly = Baseline(fingerprints: Set(prints(original).flatMap { $0.partPrints.map(\.hash) }))
        #expect(!prints(both).contains(where: tailOnly.contains), "the head's missing write-back is new")
    }

    @Test func aDifferentBugIsADifferentFingerprint() throws {
        // The head's write-back missing instead of the tail's.
        let head = try checked("""
            module /usr/lib/libpmem.so.1 0x7f0000000000 0x10000
            pmem 0x7f1000000000 0x10000 name=pool
            stack 1 0x7f0000001a2c 0x7f0000003000
            op 1 begin dst=0x7f100000003d len=13 name=memcpy_flushcache
            store 0x7f100000003d 3 stack=1
            ntstore 0x7f1000000040 8
            store 0x7f1000000048 2 stack=1
            clwb 0x7f1000000048
            op 1 end
            sfence
            """)
        let a = prints(original).map(\.hash)
        let b = prints(head).map(\.hash)
        #expect(Set(a).isDisjoint(with: b))
        #expect(prints(head)[0].place == "head dirty by libpmem.so.1+0x1a2c")
        // Another routine with the same bug is another finding too.
        let other = try checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000)
            .replacingOccurrences(of: "name=memcpy_flushcache", with: "name=pmem_memcpy_nodrain"))
        #expect(Set(a).isDisjoint(with: prints(other).map(\.hash)))
    }

    @Test func aSymbolizedFrameSurvivesRelinking() throws {
        // With function names the fingerprint no longer depends on the offset, which
        // moves whenever the library is rebuilt.
        let lookupA = FakeLookup(places: ["libpmem.so.1+0x1a2c": SourcePlace(function: "memcpy_flushcache", file: "/src/flush.c", line: 88)])
        let lookupB = FakeLookup(places: ["libpmem.so.1+0x1a6c": SourcePlace(function: "memcpy_flushcache", file: "/src/flush.c", line: 90)])
        let relinked = try checked(tailBugTrace(module: 0x7f00_0000_0000, pmem: 0x7f10_0000_0000)
            .replacingOccurrences(of: "0x7f0000001a2c", with: "0x7f0000001a6c"))
        let a = prints(original, frames: FrameResolver(lookupA))
        let b = prints(relinked, frames: FrameResolver(lookupB))
        #expect(a[0].frame == "libpmem.so.1!memcpy_flushcache")
        #expect(a.map(\.hash) == b.map(\.hash))
        #expect(prints(original).map(\.hash) != prints(relinked).map(\.hash), "unsymbolized, the offset counts")
    }

    @Test func framesOutsideModulesAndFindingsOutsideOpsUseNoAddress() throws {
        let t = try checked("""
            pmem 0x20000 0x1000 name=log
            stack 1 0x401a2c
            store 0x20010 4 stack=1
            durable 0x20010 4
            clwb 0x20100
            """)
        let p = prints(t)
        #expect(p.map(\.rule) == [.notDurable, .redundantFlush])
        #expect(p[0].key == "powercut-fingerprint 2|not-durable|-|-|- log+0x10 4B dirty by ?")
        #expect(p[1].place == "clwb line log+0x100")
        #expect(p[1].frame == "-")
    }

    @Test func fnv1aMatchesTheReferenceVectors() {
        #expect(fnv1a64("") == 0xcbf2_9ce4_8422_2325)
        #expect(fnv1a64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(fnv1a64("foobar") == 0x8594_4171_f739_67e8)
    }
}
