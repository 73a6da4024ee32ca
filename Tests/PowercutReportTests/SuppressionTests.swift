import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

@Suite struct SuppressionTests {
    // Stack 1: memcpy_flushcache in libpmem, called from the application.
    let trace = try! checked("""
        module /usr/lib/x86_64-linux-gnu/libpmem.so.1 0x7f0000000000 0x10000
        module /opt/app/bin/logwriter 0x555500000000 0x10000
        pmem 0x7f1000000000 0x10000 name=pool
        stack 1 0x7f0000001a2c 0x7f0000002000 0x555500001000 0x555500002000
        op 1 begin dst=0x7f1000000003 len=5 name=memcpy_flushcache
        store 0x7f1000000003 5 stack=1
        op 1 end
        sfence
        """)
    let names = FrameResolver(FakeLookup(places: [
        "libpmem.so.1+0x1a2c": SourcePlace(function: "memcpy_flushcache"),
        "libpmem.so.1+0x2000": SourcePlace(function: "pmem_memcpy_nodrain"),
        "logwriter+0x1000": SourcePlace(function: "log_append"),
    ]))

    func parse(_ body: String) throws -> SuppressionList { SuppressionList(try SuppressionList.parse(body, file: "s.supp")) }

    func suppressed(_ body: String, frames: FrameResolver = FrameResolver()) throws -> [String?] {
        let list = try parse(body)
        return trace.result.findings.map { list.match($0, in: trace, frames: frames)?.name }
    }

    @Test func objMatchesTheModulePathWithWildcards() throws {
        #expect(try suppressed("{\n a\n powercut:dirty-at-return\n obj:*/libpmem.so.?\n}\n") == ["a", nil])
        #expect(try suppressed("{\n a\n powercut:*\n obj:/usr/lib/*\n}\n") == ["a", "a"])
        #expect(try suppressed("{\n a\n powercut:*\n obj:*/libc.so*\n}\n") == [nil, nil])
        #expect(try suppressed("{\n a\n powercut:not-durable\n obj:libpmem.so.1\n}\n") == [nil, nil], "the full path, as in Valgrind")
    }

    @Test func framesMatchInnermostFirstAndDotsMatchAnyNumber() throws {
        let both = "powercut:not-durable"
        // Innermost first: the application frame is not the first.
        #expect(try suppressed("{\n a\n \(both)\n obj:/opt/app/bin/logwriter\n}\n") == [nil, nil])
        #expect(try suppressed("{\n a\n \(both)\n ...\n obj:/opt/app/bin/logwriter\n}\n") == [nil, "a"])
        // Two library frames, then the application; frames below the last line are not compared.
        #expect(try suppressed("{\n a\n \(both)\n obj:*libpmem*\n obj:*libpmem*\n obj:*logwriter\n}\n") == [nil, "a"])
        #expect(try suppressed("{\n a\n \(both)\n obj:*libpmem*\n obj:*logwriter\n}\n") == [nil, nil])
        // '...' also matches no frame at all.
        #expect(try suppressed("{\n a\n \(both)\n ...\n obj:*libpmem*\n ...\n}\n") == [nil, "a"])
        #expect(try suppressed("{\n a\n \(both)\n ...\n}\n") == [nil, "a"])
        // More lines than frames.
        #expect(try suppressed("{\n a\n \(both)\n ...\n obj:*logwriter\n obj:*\n}\n") == [nil, "a"])
        #expect(try suppressed("{\n a\n \(both)\n ...\n obj:*logwriter\n obj:*logwriter\n obj:*\n}\n") == [nil, nil])
    }

    @Test func funMatchesOnlyWhatASymbolizerNames() throws {
        let block = "{\n a\n powercut:dirty-at-return\n fun:memcpy_*\n fun:pmem_memcpy_nodrain\n}\n"
        #expect(try suppressed(block) == [nil, nil], "no symbolizer: fun: matches nothing")
        #expect(try suppressed(block, frames: names) == ["a", nil])
        #expect(try suppressed("{\n a\n powercut:*\n ...\n fun:log_append\n}\n", frames: names) == ["a", "a"])
        #expect(try suppressed("{\n a\n powercut:*\n fun:*\n}\n") == [nil, nil], "an unnamed frame is no match even for '*'")
    }

    @Test func theFirstMatchingBlockWinsAndOtherToolsAreSkipped() throws {
        let list = try parse("""
            # pmemcheck and memcheck share this file
            {
               leak
               Memcheck:Leak
               match-leak-kinds: definite
               fun:malloc
            }
            {
               flush-first
               powercut:not-durable
               obj:*libpmem*
            }
            {
               flush-second
               Memcheck,powercut:*
               ...
            }
            """)
        #expect(list.suppressions.map(\.name) == ["flush-first", "flush-second"])
        #expect(list.suppressions[0].line == 8)
        let triage = Triage([trace], suppressions: list)
        #expect(triage.entries[0].map(\.status) == [.suppressed(list.suppressions[1]), .suppressed(list.suppressions[0])])
        #expect(triage.reportedErrors == 0 && triage.suppressedCount == 2)
        #expect(triage.usedSuppressions.map(\.suppression.name) == ["flush-first", "flush-second"])
    }

    @Test func malformedFilesNameTheLine() {
        func problem(_ text: String) -> String? {
            do { _ = try SuppressionList.parse(text, file: "s.supp"); return nil } catch { return error.description }
        }
        #expect(problem("fun:x\n") == "s.supp:1: expected '{' to start a suppression, found 'fun:x'")
        #expect(problem("{\n  a\n  powercut:not-durabel\n  ...\n}\n")
                == "s.supp:3: unknown rule 'not-durabel' (expected not-durable, dirty-at-return, out-of-bounds-store, missing-drain, redundant-flush, unnecessary-flush, or a pattern with * and ?)")
        #expect(problem("{\n  a\n  powercut:not-durable\n  src:x.c:3\n}\n") == "s.supp:4: expected a frame line (fun:NAME, obj:PATH or ...) or '}', found 'src:x.c:3'")
        #expect(problem("\n{\n  a\n  powercut:not-durable\n  ...\n") == "s.supp:2: suppression opened at line 2 has no closing '}'")
        #expect(problem("{\n  a\n  powercut:not-durable\n}\n") == "s.supp:1: suppression 'a' has no frame line (fun:, obj: or ...); '...' alone matches any stack")
        #expect(problem("{\n  powercut:not-durable\n  ...\n}\n") == "s.supp:2: expected the suppression's name before 'powercut:not-durable' (the first line of a block names it)")
        #expect(problem("{\n  a\n  not-durable\n  ...\n}\n") == "s.supp:3: expected 'powercut:RULE' (TOOL:KIND), found 'not-durable'")
        #expect(problem("{\n  a\n}\n") == "s.supp:3: expected 'powercut:RULE' after the name")
        #expect(problem("\n# only comments\n\n") == nil)
    }

    @Test func generatedBlocksSuppressWhatTheyWereGeneratedFor() throws {
        for frames in [FrameResolver(), names] {
            let text = SuppressionList.generate(trace.result.findings.map { ($0, trace) }, frames: frames)
            let list = try parse(text)
            #expect(list.suppressions.count == 2)
            #expect(Triage([trace], suppressions: list, frames: frames).reportedErrors == 0, "\(text)")
        }
        let named = SuppressionList.generate([(trace.result.findings[0], trace)], frames: names)
        #expect(named == """
            {
               dirty-at-return in memcpy_flushcache
               powercut:dirty-at-return
               fun:memcpy_flushcache
               fun:pmem_memcpy_nodrain
               fun:log_append
               obj:/opt/app/bin/logwriter
            }

            """)
        let unnamed = SuppressionList.generate([(trace.result.findings[0], trace)], frames: FrameResolver())
        #expect(unnamed.contains("   obj:/usr/lib/x86_64-linux-gnu/libpmem.so.1\n   obj:/usr/lib/x86_64-linux-gnu/libpmem.so.1\n   obj:/opt/app/bin/logwriter\n"))
    }

    @Test func aStackWithoutModulesGeneratesAWideBlockAndSaysSo() throws {
        let t = try checked("""
            pmem 0x10000 0x1000
            stack 1 0x401a2c 0x4020f0
            op 1 begin dst=0x10000 len=8 contract=persist
            store 0x10000 8 stack=1
            op 1 end
            """)
        let text = SuppressionList.generate(t.result.findings.map { ($0, t) }, frames: FrameResolver())
        #expect(text.hasPrefix("# no frame of this finding's stack is in a module or named by a symbolizer:\n"))
        #expect(text.contains("   powercut:not-durable\n   ...\n}\n"))
    }

    @Test func aPathBeginningWithACombiningMarkReadsBackAndMatches() throws {
        // U+030A right after "obj:" joins the ':' into one Character (found by fuzzing:
        // powercut rejected the blocks it had generated).
        let t = try checked("""
            module \u{30A}sr/lib/libpmem.so.1 0x7f0000000000 0x10000
            pmem 0x7f1000000000 0x10000
            stack 1 0x7f0000001a2c
            op 1 begin dst=0x7f1000000003 len=5 contract=persist
            store 0x7f1000000003 5 stack=1
            op 1 end
            """)
        let text = SuppressionList.generate(t.result.findings.map { ($0, t) }, frames: FrameResolver())
        #expect(text.contains("   obj:\u{30A}sr/lib/libpmem.so.1\n"))
        let list = SuppressionList(try SuppressionList.parse(text, file: "gen.supp"))
        #expect(t.result.findings.allSatisfy { list.match($0, in: t, frames: FrameResolver()) != nil })
    }

    @Test func wildcardsAreValgrinds() {
        #expect(wildcardMatch("*", ""))
        #expect(wildcardMatch("a*b?d", "a/x/yb_d"))
        #expect(!wildcardMatch("a*b?d", "a/x/ybd"))
        #expect(wildcardMatch("*libpmem.so*", "/usr/lib/libpmem.so.1"))
        #expect(!wildcardMatch("libpmem", "/usr/lib/libpmem.so.1"))
        #expect(wildcardMatch("**x*", "abxab"))
    }
}
