import Foundation
import Testing
import PowercutTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Replaces every hex address with 0x… (they move with ASLR and builds).
func filterAddresses(_ s: String) -> String {
    s.replacing(/0x[0-9a-f]+/, with: "0x…")
}

/// The shared C subject (PowercutTestSupport), for symbolized output.
extension LoadedCSubject {
    /// A trace whose store came from pc_known_store, called by pc_known_caller.
    var trace: String {
        """
        powercut-trace 1
        module \(path) 0x\(String(base, radix: 16)) 0x100000
        pmem 0x10000 0x1000
        stack 1 0x\(String(entry, radix: 16)) 0x\(String(returnAddress, radix: 16))
        op 1 begin dst=0x10000 len=1 name=pc_known_store
        store 0x10000 1 stack=1
        op 1 end
        sfence

        """
    }
}

/// Whether some llvm-symbolizer (or libdw) is on this machine, as powercut looks for it.
let canSymbolize: Bool = {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    let candidates: [String] = dirs.map { $0 + "/llvm-symbolizer" } + ["/opt/swift/usr/bin/llvm-symbolizer"]
    return candidates.contains { access($0, X_OK) == 0 } || dlopen("libdw.so.1", RTLD_NOW) != nil
}()

@Suite struct ExplainCommandTests {
    let tail = "Traces/adr-tail-not-written-back.pct"

    @Test func explainTellsTheStoryOfAFinding() throws {
        let run = try powercut(["explain", tail, "--finding", "2", "--no-symbols"])
        #expect(run.status == 0 && run.stderr.isEmpty)
        // The golden story, shared with PowercutExplainTests (which tells it in-process).
        #expect(run.stdout == (try String(contentsOf: packageRoot.appendingPathComponent("Traces/adr-tail-not-written-back.finding-2.explain"),
                                          encoding: .utf8)))
    }

    @Test func explainDefaultsToTheFirstErrorAndFollowsBytesAndOps() throws {
        let first = try powercut(["explain", "--no-symbols", tail])
        #expect(first.status == 0 && first.stdout.contains("[finding 1 of 2]"))
        #expect(first.stdout.contains("fix: write back line 0x10040 after store #4 and before the return of op 1 at #5\n"))
        let byte = try powercut(["explain", "--no-symbols", "--byte", "0x10049", tail])
        #expect(byte.status == 0 && byte.stdout.contains("byte 0x10049\n   finding 2 of 2: error: not-durable: ") && byte.stdout.contains("following 0x10049 (1 byte)"))
        let op = try powercut(["explain", "--no-symbols", "--op", "1", tail])
        #expect(op.status == 0 && op.stdout.contains("following 0x1003d-0x10049 (13 bytes) in lines 0x10000, 0x10040"))
        let binary = try powercut(["explain", "--no-symbols", "Traces/adr-example-clean-binary.pctb"])
        #expect(binary.status == 0 && binary.stdout.contains("no error finding to explain"))
    }

    @Test func explainOnTheCorpusTraceWithStacksAndData() throws {
        let run = try powercut(["explain", "--no-symbols", "Traces/stacks-and-data.pct"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("""
            #3    ntstore 0x7f1000000006 4
                     at 0x7f0000001b00: libexample.so+0x1b00
                     by 0x7f0000002000: libexample.so+0x2000
                  cut 4  line 0x7f1000000000: 0x7f1000000003-0x7f1000000005 dirty (#1…#2) ◀, 0x7f1000000006-0x7f1000000009 wc (#3)
            """))
        #expect(run.stdout.hasSuffix("fix: write back line 0x7f1000000000 after store #2 and before the return of op 1 at #4\n"))
        // Symbolizing a module that is not on this machine is a note, not an error.
        let symbolized = try powercut(["explain", "Traces/stacks-and-data.pct"])
        #expect(symbolized.status == 0 && symbolized.stdout == run.stdout)
        #expect(symbolized.stderr == "powercut: note: /usr/lib/libexample.so: not found or not an ELF file here; its frames show module+offset\n")
    }

    @Test func selectionsThatDoNotExistAreUsageErrors() throws {
        let many = try powercut(["explain", "--finding", "99", tail])
        #expect(many.status == 64 && many.stdout.isEmpty)
        #expect(many.stderr == "powercut: --finding 99: the trace has 2 findings (choose 1-2; `powercut check` lists them in this order)\n")
        let outside = try powercut(["explain", "--byte", "0x5", tail])
        #expect(outside.status == 64 && outside.stderr == "powercut: --byte 0x5: not in any pmem range of the trace (0x10000-0x10fff)\n")
        let noOp = try powercut(["explain", "--op", "3", tail])
        #expect(noOp.status == 64 && noOp.stderr == "powercut: --op 3: the trace has no op 3 (ops: 1)\n")
        #expect(try powercut(["explain", "--finding", "1", "--op", "1", tail]).status == 64)
        #expect(try powercut(["explain", "--finding", "0", tail]).status == 64)
        #expect(try powercut(["explain", "--byte", "zz", tail]).status == 64)
    }

    @Test func badTracesExit65WithNothingWritten() throws {
        let s = Scratch()
        let bad = try s.write("bad.pct", "powercut-trace 1\npmem 0 0x100\nstor 0 1\n")
        for command in ["explain", "show", "info"] {
            let run = try powercut([command, bad])
            #expect(run.status == 65, "\(command)")
            #expect(run.stderr.hasPrefix("powercut: \(bad):3: unknown record 'stor'"), "\(command)")
        }
        let svg = s.path("t.svg")
        #expect(try powercut(["explain", "--svg", svg, bad]).status == 65)
        #expect(!FileManager.default.fileExists(atPath: svg))
    }

    @Test func thePictureAndThePageAreWritten() throws {
        let s = Scratch()
        let svg = s.path("t.svg"), html = s.path("t.html")
        let run = try powercut(["explain", "--no-symbols", "--finding", "2", "--svg", svg, "--html", html, tail])
        #expect(run.status == 0)
        let picture = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(picture.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        for text in [">line 0x10040</text>", ">0x10048-0x10049 tail</text>", ">#6</text>", ">cut 7: durability</text>",
                     ">store 0x10048 +2</text>"] {
            #expect(picture.contains(text), "\(text)")
        }
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains(picture) && page.contains("<h2>The story</h2>") && page.contains("<td class=\"dirty lost\">dirty</td>"))
    }

    @Test func showDumpsEveryRecordWithNumbersAndStacks() throws {
        let run = try powercut(["show", "--no-symbols", tail])
        #expect(run.status == 0)
        #expect(run.stdout == """
            == Traces/adr-tail-not-written-back.pct: text trace, version 1
            powercut-trace 1
            pmem 0x10000 0x1000 name=pool
            stack 1 0x401a2c 0x4020f0
            #0     op 1 begin dst=0x1003d len=13 name=memcpy_flushcache
            #1       store 0x1003d 3 stack=1
                        at 0x401a2c: ???
                        by 0x4020f0: ???
            #2       clwb 0x1003d
            #3       ntstore 0x10040 8
            #4       store 0x10048 2 stack=1
                        at 0x401a2c: ???
                        by 0x4020f0: ???
            #5     op 1 end
            #6     sfence
            == 7 events

            """)
        let data = try powercut(["show", "--no-symbols", "--data-bytes", "1", "Traces/stacks-and-data.pct"])
        #expect(data.stdout.contains("#2       store 0x7f1000000004 2 data=42…(2 bytes) stack=1\n"))
    }

    @Test func infoSummarizesATrace() throws {
        let run = try powercut(["info", "Traces/stacks-and-data.pct"])
        #expect(run.status == 0)
        #expect(run.stdout == """
            file          Traces/stacks-and-data.pct
            format        text, version 1
            domain        adr (default)
            line size     64 bytes (default)
            pmem          0x7f1000000000-0x7f100000ffff (64 KiB) name=pool
            modules       /usr/lib/libexample.so 0x7f0000000000-0x7f0000003fff build-id=0011aabb
            meta          recorder: powercut 0.1.0
            events        6: 2 store, 1 ntstore, 1 sfence, 1 op begin, 1 op end
            bytes stored  3 cached, 4 non-temporal
            ops           1: memcpy_flushcache ×1 (flushcache)
            stacks        2 (on 3 of 6 events)

            """)
        let binary = try powercut(["info", "Traces/adr-example-clean-binary.pctb"])
        #expect(binary.stdout.contains("format        binary, version 1\n"))
    }

    @Test(.enabled(if: LoadedCSubject.shared != nil && canSymbolize))
    func framesOfASubjectAreSymbolized() throws {
        let subject = try #require(LoadedCSubject.shared)
        let s = Scratch()
        let trace = try s.write("subject.pct", subject.trace)
        let show = try powercut(["show", trace])
        #expect(show.status == 0 && show.stderr.isEmpty)
        #expect(filterAddresses(show.stdout).contains("""
            #1       store 0x… 1 stack=1
                        at 0x…: pc_known_store (subject.c:\(LoadedCSubject.storeLine))
                        by 0x…: pc_known_caller (subject.c:\(LoadedCSubject.callLine))
            """))
        let explain = try powercut(["explain", trace])
        #expect(explain.status == 0)
        #expect(filterAddresses(explain.stdout).contains("""
               0x… (1 byte, tail): dirty, from store #1
                  at 0x…: pc_known_store (subject.c:\(LoadedCSubject.storeLine))
                  by 0x…: pc_known_caller (subject.c:\(LoadedCSubject.callLine))
            fix: write back line 0x… after store #1 and before the return of op 1 at #2
            """))
    }
}
