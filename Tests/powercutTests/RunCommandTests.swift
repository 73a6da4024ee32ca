import Foundation
import PowercutTrace
import Testing

/// `powercut run`: whole programs, compiled here, recorded under Valgrind with
/// powercut's tool and checked. Needs cc, valgrind and libpmem-dev (Tools/setup).
@Suite(.serialized) struct RunCommandTests {
    /// Compiles `source` into an executable in `scratch`; returns its path.
    static func compile(_ source: String, _ name: String, in scratch: Scratch, flags: [String] = []) throws -> String {
        let src = try scratch.write(name + ".c", source)
        let exe = scratch.path(name)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-O1", "-g", "-o", exe, src] + flags
        try cc.run()
        cc.waitUntilExit()
        #expect(cc.terminationStatus == 0, "cc failed for \(name).c")
        return exe
    }

    /// The line of `source` holding `marker`, as the debug info names it.
    static func line(of marker: String, in source: String) -> Int {
        (source.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(marker) } ?? -1) + 1
    }

    /// The SARIF report of a kept trace: the frames every report prints (a caller
    /// frame is looked up at its return address - 1).
    static func sarif(_ trace: String, in scratch: Scratch) throws -> String {
        try powercut(["check", "--format", "sarif", trace], in: scratch.url).stdout
    }

    static let mapFile = """
        #include <fcntl.h>
        #include <immintrin.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        static char *map_file(const char *path, size_t n) {
            int fd = open(path, O_RDWR | O_CREAT, 0644);
            if (fd < 0 || ftruncate(fd, n) != 0) _exit(9);
            char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) _exit(9);
            return p;
        }

        """

    /// A log writer that appends a record with memcpy and writes back its lines with
    /// clflush; TAIL_BUG leaves out the last, partial line.
    static let logWriter = mapFile + """
        static void __attribute__((noinline)) log_append(char *dst, const char *src, size_t n) {
            memcpy(dst, src, n); /* STORE */
        #ifdef TAIL_BUG
            for (size_t off = 0; off + 64 <= n; off += 64) _mm_clflush(dst + off);
        #else
            for (size_t off = 0; off < n + ((unsigned long)dst & 63); off += 64) _mm_clflush(dst + off);
        #endif
            _mm_sfence();
        }
        int main(int argc, char **argv) {
            char *log = map_file(argv[1], 4096);
            char record[300];
            memset(record, 'r', sizeof record);
            log_append(log + 64, record, 100);
            log_append(log + 200, record, 300);
            return 0;
        }
        """

    @Test func logWriterMissingItsTailWriteBackIsFlaggedAtItsSourceLine() throws {
        let scratch = Scratch()
        let buggy = try Self.compile(Self.logWriter, "logw", in: scratch, flags: ["-DTAIL_BUG"])
        let r = try powercut(["run", "--pmem-file", scratch.path("log"), "--op", "log_append=persist", "-o", "logw.pctb",
                              "--", buggy, scratch.path("log")], in: scratch.url)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("error: not-durable"))
        #expect(r.stdout.contains("(log_append)"))
        #expect(r.stdout.contains("missing: a write-back"))
        let line = Self.line(of: "/* STORE */", in: Self.logWriter)
        #expect(try Self.sarif("logw.pctb", in: scratch).contains("\"log_append (logw.c:\(line))\""))

        let fixed = try Self.compile(Self.logWriter, "logw-fixed", in: scratch)
        let ok = try powercut(["run", "--pmem-file", scratch.path("log2"), "--op", "log_append=persist",
                               "--", fixed, scratch.path("log2")], in: scratch.url)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("0 errors"))
        #expect(ok.stdout.contains("2 ops") || ok.stdout.contains("2 op"), "\(ok.stdout)")
    }

    /// --pmem-file: that file's mappings are tracked, another file's are not; the kept
    /// trace has every store with its bytes and stacks that name the program.
    @Test func pmemFileTracksEveryMappingOfThatFileOnly() throws {
        let scratch = Scratch()
        let source = Self.mapFile + """
            int main(int argc, char **argv) {
                char *pool = map_file(argv[1], 8192);
                char *other = map_file(argv[2], 4096);
                memset(other, 1, 4096);
                _mm_stream_si64((long long *)(pool + 4096), 0x0102030405060708LL);
                pool[10] = 42; /* CACHED */
                _mm_clflush(pool + 10);
                _mm_sfence();
                return 0;
            }
            """
        let exe = try Self.compile(source, "twofiles", in: scratch)
        let r = try powercut(["run", "--pmem-file", "pool", "-o", "kept.pct", "--", exe, "pool", "other"], in: scratch.url)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let t = try Trace(contentsOf: scratch.path("kept.pct"))
        let pmem = t.header.pmem
        #expect(pmem.count == 1 && pmem[0].length == 8192 && pmem[0].name?.hasSuffix("/pool") == true)
        let events = t.events.filter { $0.kind != .stackDefinition }
        let stores = events.filter { $0.kind.isStore }
        #expect(stores.map(\.kind) == [.ntstore, .store])
        #expect(stores.allSatisfy { pmem[0].contains($0.address) })
        #expect(t.batch.data(of: stores[0]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(t.batch.data(of: stores[1]) == [42])
        #expect(events.contains { $0.kind == .clflush && $0.address == stores[1].address })
        #expect(events.contains { $0.kind == .sfence })
        let frames = t.stacks[stores[1].stack] ?? []
        #expect(frames.count >= 2)
        #expect(t.header.modules.contains { $0.path == exe && $0.contains(frames[0]) })
        #expect(t.header.meta.contains { $0.key == "recorder" && $0.value.hasPrefix("powercut-valgrind") })
    }

    /// A program that writes a mapped file and never writes back or fences: with
    /// UNMAP it unmaps the file first, with FLUSH it does what makes the bytes durable.
    static let storeThenLeave = mapFile + """
        int main(int argc, char **argv) {
            char *pool = map_file(argv[1], 4096);
            memcpy(pool + 100, "hello", 5); /* STORE */
        #ifdef FLUSH
            _mm_clflush(pool + 100);
            _mm_sfence();
        #endif
        #ifdef UNMAP
            munmap(pool, 4096); /* UNMAP */
            pool = map_file(argv[1], 4096);
            pool[0] = 1;
            _mm_clflush(pool);
            _mm_sfence();
        #endif
            return 0;
        }
        """

    /// Stores never made durable are reported when the program exits with the file
    /// still mapped, with the store's source line; --check-at-release=no leaves it out.
    @Test func storeNeverWrittenBackIsFlaggedAtExitWithItsSourceLine() throws {
        let scratch = Scratch()
        let exe = try Self.compile(Self.storeThenLeave, "leave", in: scratch)
        let r = try powercut(["run", "--pmem-file", "pool", "-o", "leave.pctb", "--", exe, "pool"], in: scratch.url)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("bytes not durable at the durable assertion"), "\(r.stdout)")
        #expect(r.stdout.contains("missing: a write-back"), "\(r.stdout)")
        let t = try Trace(contentsOf: scratch.path("leave.pctb"))
        let marks = t.events.filter { $0.kind == .mark }.map { t.names[Int($0.name) - 1] }
        #expect(marks.contains { $0.hasPrefix("powercut: 0x") && $0.hasSuffix("+0x1000 still mapped at program exit") },
                "\(marks)")
        let line = Self.line(of: "/* STORE */", in: Self.storeThenLeave)
        #expect(try Self.sarif("leave.pctb", in: scratch).contains("(leave.c:\(line))"))

        let off = try powercut(["run", "--pmem-file", "pool", "--check-at-release=no", "--", exe, "pool"], in: scratch.url)
        #expect(off.status == 0, "\(off.stdout)\(off.stderr)")
        #expect(!off.stdout.contains("not-durable"))
    }

    /// munmap before the write-back: reported at the release (the assertion's stack is
    /// the munmap call), though the program maps the file again and flushes that.
    @Test func unmappingBeforeTheWriteBackIsFlaggedAtTheRelease() throws {
        let scratch = Scratch()
        let exe = try Self.compile(Self.storeThenLeave, "unmap", in: scratch, flags: ["-DUNMAP"])
        let r = try powercut(["run", "--pmem-file", "pool", "-o", "unmap.pctb", "--", exe, "pool"], in: scratch.url)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("bytes not durable at the durable assertion"), "\(r.stdout)")
        let t = try Trace(contentsOf: scratch.path("unmap.pctb"))
        let marks = t.events.filter { $0.kind == .mark }.map { t.names[Int($0.name) - 1] }
        #expect(marks.contains { $0.hasSuffix("+0x1000 released by munmap") }, "\(marks)")
        let report = try Self.sarif("unmap.pctb", in: scratch)
        #expect(report.contains("(unmap.c:\(Self.line(of: "/* STORE */", in: Self.storeThenLeave)))"))
        #expect(report.contains("(unmap.c:\(Self.line(of: "/* UNMAP */", in: Self.storeThenLeave)))"))
        // one finding: the second mapping's store was written back and fenced
        #expect(r.stdout.contains("1 error"), "\(r.stdout)")
    }

    @Test func writtenBackAndFencedBeforeExitIsClean() throws {
        let scratch = Scratch()
        let exe = try Self.compile(Self.storeThenLeave, "flushed", in: scratch, flags: ["-DFLUSH"])
        let r = try powercut(["run", "--pmem-file", "pool", "--", exe, "pool"], in: scratch.url)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("0 errors"), "\(r.stdout)")
        let both = try Self.compile(Self.storeThenLeave, "flushed-unmap", in: scratch, flags: ["-DFLUSH", "-DUNMAP"])
        let u = try powercut(["run", "--pmem-file", "pool", "--", both, "pool"], in: scratch.url)
        #expect(u.status == 0, "\(u.stdout)\(u.stderr)")
    }

    @Test func clwbThatStockValgrindCannotRunIsOneClearLine() throws {
        let scratch = Scratch()
        let source = Self.mapFile + """
            int main(int argc, char **argv) {
                char *pool = map_file(argv[1], 4096);
                pool[0] = 1;
                __asm__ volatile("clwb (%0)" :: "r"(pool) : "memory"); /* CLWB */
                _mm_sfence();
                return 0;
            }
            """
        let exe = try Self.compile(source, "usesclwb", in: scratch)
        let r = try powercut(["run", "--pmem-file", "pool", "--", exe, "pool"], in: scratch.url)
        #expect(r.status == 2)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("clwb at "))
        #expect(r.stderr.contains("usesclwb.c:\(Self.line(of: "/* CLWB */", in: source))"), "\(r.stderr)")
        #expect(r.stderr.contains("powercut record"))
        #expect(r.stdout.isEmpty)
    }

    @Test func aProgramThatFailsIsSaidSoApartFromFindings() throws {
        let scratch = Scratch()
        let exe = try Self.compile("int main(void) { return 3; }", "fails", in: scratch)
        let r = try powercut(["run", "--", exe], in: scratch.url)
        #expect(r.status == 2)
        #expect(r.stdout.contains("0 errors"))
        #expect(r.stderr.contains("the program exited with status 3"))

        let crash = try Self.compile("int main(void) { *(volatile int *)8 = 1; return 0; }", "crashes", in: scratch)
        let c = try powercut(["run", "--", crash], in: scratch.url)
        #expect(c.status == 2)
        #expect(c.stderr.contains("killed by signal 11 (SIGSEGV)"), "\(c.stderr)")
    }

    @Test func anOpOrPmemFileThatNeverMattersIsAWarning() throws {
        let scratch = Scratch()
        let exe = try Self.compile("int main(void) { return 0; }", "idle", in: scratch)
        let r = try powercut(["run", "--op", "log_apend=persist", "--pmem-file", "nosuch", "--", exe], in: scratch.url)
        #expect(r.status == 0)
        #expect(r.stderr.contains("warning: --op log_apend: the program never called it"))
        #expect(r.stderr.contains("warning: --pmem-file: the program never mapped \(scratch.path("nosuch"))"))
    }

    @Test func usageErrors() throws {
        let r = try powercut(["run", "./prog"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("after '--'"))
        let op = try powercut(["run", "--op", "f=sometimes", "--", "/bin/true"])
        #expect(op.status == 64)
        #expect(op.stderr.contains("--op 'f=sometimes'"))
        let check = try powercut(["run", "--format", "yaml", "--", "/bin/true"])
        #expect(check.status == 64)
        let release = try powercut(["run", "--check-at-release=maybe", "--", "/bin/true"])
        #expect(release.status == 64)
        #expect(release.stderr.contains("--check-at-release 'maybe': expected yes or no"), "\(release.stderr)")
    }

    /// A harness written for the in-process recorder (powercut.h) records under Valgrind
    /// unchanged: its ranges, ops and durable assertions arrive as client requests.
    @Test func powercutHarnessRecordsUnderValgrindUnchanged() throws {
        let scratch = Scratch()
        let source = """
            #include <immintrin.h>
            #include <stdio.h>
            #include <string.h>
            #include <powercut.h>
            static char pool[4096] __attribute__((aligned(64)));
            static void copy_nt(void *dst, const void *src, size_t n) {
                for (size_t i = 0; i < n; i += 8) _mm_stream_si64((long long *)((char *)dst + i), *(const long long *)((const char *)src + i));
            }
            int main(int argc, char **argv) {
                char src[64] = "hello";
                if (powercut_pmem(pool, sizeof pool) < 0) { fprintf(stderr, "%s\\n", powercut_error()); return 1; }
                powercut_op_begin(pool, 64, "copy_nt", POWERCUT_FLUSHCACHE);
                powercut_record_call(copy_nt, pool, src, 64);
                powercut_op_end();
                if (argc < 2) powercut_drain();
                pool[128] = 1; /* OUTSIDE */
                if (powercut_durable(pool, 64) < 0) { fprintf(stderr, "%s\\n", powercut_error()); return 1; }
                return 0;
            }
            """
        // The library's own sources, built with cc: Valgrind 3.19 cannot read the DWARF 5
        // forms (strx, addrx) that the Swift toolchain's clang writes.
        let sources = ["Sources/CPowercutRecorder", "Sources/CPowercutEncoder"].flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent(dir).path)) ?? [])
                .filter { $0.hasSuffix(".c") }.map { packageRoot.appendingPathComponent(dir + "/" + $0).path }
        }
        let include = packageRoot.appendingPathComponent("Sources/CPowercutRecorder/include").path
        let encoder = packageRoot.appendingPathComponent("Sources/CPowercutEncoder/include").path
        let exe = try Self.compile(source, "harness", in: scratch,
                                   flags: ["-I", include, "-I", encoder] + sources + ["-lcapstone", "-lunwind", "-lunwind-x86_64", "-ldl"])
        // pool[128] is outside the durable assertion; left dirty at exit, the
        // release check reports it (and only it) unless told not to.
        let ok = try powercut(["run", "--check-at-release=no", "--", exe], in: scratch.url)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("1 op"), "\(ok.stdout)")
        let atExit = try powercut(["run", "-o", "exit.pctb", "--", exe], in: scratch.url)
        #expect(atExit.status == 1, "\(atExit.stdout)\(atExit.stderr)")
        #expect(atExit.stdout.contains("error: not-durable: 1 byte not durable at the durable assertion"), "\(atExit.stdout)")
        #expect(atExit.stdout.contains("1 error"), "\(atExit.stdout)")
        let outside = Self.line(of: "/* OUTSIDE */", in: source)
        #expect(try Self.sarif("exit.pctb", in: scratch).contains("(harness.c:\(outside))"))
        let bad = try powercut(["run", "--", exe, "nodrain"], in: scratch.url)
        #expect(bad.status == 1, "\(bad.stdout)\(bad.stderr)")
        #expect(bad.stdout.contains("not-durable"))
    }

    // MARK: - traces with the records of whole programs (pmem between events, marks, threads)

    static let libpmemProgram = """
        #include <libpmem.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        int main(int argc, char **argv) {
            size_t mapped;
            int is_pmem;
            char *p = pmem_map_file(argv[1], 1 << 20, PMEM_FILE_CREATE, 0644, &mapped, &is_pmem);
            if (!p) { perror("pmem_map_file"); return 9; }
            static char src[4096];
            memset(src, 'x', sizeof src);
            for (int i = 0; i < 16; i++) pmem_memcpy_persist(p + i * 4096, src, 4096);
        #ifdef NODRAIN
            pmem_memcpy_nodrain(p + 65536 + 8, src, 3000); /* NODRAIN */
            munmap(p, mapped); /* no pmem_drain before the mapping goes */
        #else
            pmem_unmap(p, mapped);
        #endif
            return 0;
        }
        """

    @Test(.enabled(if: EncoderTests.readerHasNewRecords, "needs the reader of mark, pmem-release and thread records"))
    func unmodifiedLibpmemProgramIsClean() throws {
        let scratch = Scratch()
        let exe = try Self.compile(Self.libpmemProgram, "libpmem-ok", in: scratch, flags: ["-lpmem"])
        let r = try powercut(["run", "--op", "pmem_memcpy_persist=persist", "-o", "t.pctb", "--", exe, scratch.path("pool")],
                             in: scratch.url, environment: ["PMEM_IS_PMEM_FORCE": "1"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("16 ops"), "\(r.stdout)")
        #expect(r.stdout.contains("0 errors"))
        // libpmem's annotations arrive, as marks that change nothing.
        let t = try Trace(contentsOf: scratch.path("t.pctb"))
        let marks = t.events.filter { $0.kind == .mark }.map { t.names[Int($0.name) - 1] }
        #expect(marks.contains { $0.hasPrefix("pmemcheck DO_FLUSH") })
        #expect(t.events.contains { $0.kind == .pmemRelease && $0.size == 1 << 20 })
        #expect(t.events.filter { $0.kind == .ntstore }.count >= 16 * 4096 / 32)
    }

    /// pmem_memcpy_nodrain is judged by the instructions it ran. libpmem's non-temporal
    /// path ends with its own sfence, so even with no pmem_drain nothing is at risk;
    /// its cached path with the write-backs skipped (PMEM_NO_FLUSH=1, meant for eADR
    /// platforms) leaves the copy dirty at return: flagged at the program's call in the
    /// adr domain, clean in eadr.
    @Test(.enabled(if: EncoderTests.readerHasNewRecords, "needs the reader of mark, pmem-release and thread records"))
    func nodrainIsJudgedByTheInstructionsItRan() throws {
        let scratch = Scratch()
        let exe = try Self.compile(Self.libpmemProgram, "libpmem-nodrain", in: scratch, flags: ["-lpmem", "-DNODRAIN"])
        let op = ["--op", "pmem_memcpy_nodrain=flushcache"]
        let nt = try powercut(["run"] + op + ["-o", "nt.pct", "--", exe, scratch.path("pool1")], in: scratch.url,
                              environment: ["PMEM_IS_PMEM_FORCE": "1"])
        #expect(nt.status == 0, "\(nt.stdout)\(nt.stderr)")
        let t = try Trace(contentsOf: scratch.path("nt.pct"))
        let events = t.events.filter { $0.kind != .stackDefinition }
        let begin = try #require(events.lastIndex { $0.kind == .opBegin })
        let inside = events[begin...].prefix { $0.kind != .opEnd }
        let lastNT = try #require(inside.lastIndex { $0.kind == .ntstore })
        #expect(inside[lastNT...].contains { $0.kind == .sfence }, "libpmem's own sfence ends the non-temporal copy")

        let skipped = ["PMEM_IS_PMEM_FORCE": "1", "PMEM_NO_FLUSH": "1", "PMEM_NO_MOVNT": "1"]
        let bad = try powercut(["run"] + op + ["-o", "bad.pctb", "--", exe, scratch.path("pool2")], in: scratch.url,
                               environment: skipped)
        #expect(bad.status == 1, "\(bad.stdout)\(bad.stderr)")
        #expect(bad.stdout.contains("dirty-at-return"))
        let line = Self.line(of: "/* NODRAIN */", in: Self.libpmemProgram)
        #expect(try Self.sarif("bad.pctb", in: scratch).contains("\"main (libpmem-nodrain.c:\(line))\""))
        // The op alone: the program unmaps with no fence after the copy, which the
        // release check reports in every domain (Docs/run.md).
        let eadr = try powercut(["run", "--domain", "eadr", "--check-at-release=no"] + op + ["--", exe, scratch.path("pool3")], in: scratch.url,
                                environment: skipped)
        #expect(eadr.status == 0, "\(eadr.stdout)\(eadr.stderr)")
    }

    /// Thread 1 writes non-temporal stores; thread 0 fences and asserts the data durable
    /// (through an op of contract persist around its commit). Thread 0's fence does not
    /// drain thread 1's write-combining buffers: flagged, unless thread 1 fences too.
    static let twoThreads = """
        #include <fcntl.h>
        #include <immintrin.h>
        #include <pthread.h>
        #include <sched.h>
        #include <sys/mman.h>
        #include <unistd.h>
        static char *pool;
        static volatile int ready, done;
        static int writer_fences;
        static void *writer(void *arg) {
            for (int i = 0; i < 64; i += 8) _mm_stream_si64((long long *)(pool + i), 7); /* NT */
            if (writer_fences) _mm_sfence();
            ready = 1;
            while (!done) sched_yield();
            return 0;
        }
        static void __attribute__((noinline)) commit(char *data, size_t n, size_t unused) {
            (void)data; (void)n; (void)unused;
            _mm_sfence();
        }
        int main(int argc, char **argv) {
            int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
            if (fd < 0 || ftruncate(fd, 4096) != 0) return 9;
            pool = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            writer_fences = argc > 2;
            pthread_t t;
            pthread_create(&t, 0, writer, 0);
            while (!ready) sched_yield();
            commit(pool, 64, 0);
            done = 1;
            pthread_join(t, 0);
            return 0;
        }
        """

    @Test(.enabled(if: EncoderTests.readerHasNewRecords, "needs the reader of mark, pmem-release and thread records"))
    func oneThreadsFenceDoesNotDrainAnotherThreadsNonTemporalStores() throws {
        let scratch = Scratch()
        // Bound at load time: lazy binding of sched_yield would run the dynamic loader's
        // locked instructions in the writer thread, a real fence that drains it.
        let exe = try Self.compile(Self.twoThreads, "threads", in: scratch, flags: ["-pthread", "-Wl,-z,now"])
        let bad = try powercut(["run", "--pmem-file", "pool", "--op", "commit=persist:1:2", "-o", "t.pctb", "--", exe, "pool"],
                               in: scratch.url)
        #expect(bad.status == 1, "\(bad.stdout)\(bad.stderr)")
        #expect(bad.stdout.contains("not-durable"))
        let line = Self.line(of: "/* NT */", in: Self.twoThreads)
        #expect(try Self.sarif("t.pctb", in: scratch).contains("\"writer (threads.c:\(line))\""))
        let ok = try powercut(["run", "--pmem-file", "pool", "--op", "commit=persist:1:2", "--", exe, "pool", "each"], in: scratch.url)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
    }

    // MARK: - both recorders, one routine

    /// Calls one reference subject over a grid of destination offsets and sizes, each
    /// case in its own 8 KiB of a --pmem-file pool, with the caller's sfence after it.
    static let gridProgram = """
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        #include "powercut_subjects.h"
        static int list(const char *s, int *out) {
            int n = 0;
            while (*s) { out[n++] = atoi(s); while (*s && *s != ',') s++; if (*s) s++; }
            return n;
        }
        int main(int argc, char **argv) {
            int dst[128], size[128];
            int nd = list(argv[3], dst), ns = list(argv[4], size);
            size_t pool_size = (size_t)(nd * ns + 1) * 8192;
            int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
            if (fd < 0 || ftruncate(fd, pool_size) != 0) return 9;
            char *pool = mmap(0, pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            powercut_subject_fn fn = 0;
            for (size_t i = 0; i < powercut_subject_count(); i++)
                if (strcmp(powercut_subject_name(i), argv[2]) == 0) fn = powercut_subject_function(i);
            if (!fn || strcmp(powercut_subject_writeback_name(), "clflush") != 0) return 8;
            static char src[8192];
            for (int i = 0; i < (int)sizeof src; i++) src[i] = (char)(i * 7);
            int k = 0;
            for (int d = 0; d < nd; d++)
                for (int z = 0; z < ns; z++, k++) {
                    fn(pool + 8192 * k + dst[d], src, size[z]);
                    powercut_subject_sfence();
                }
            return 0;
        }
        """

    /// The in-process recorder (powercut sweep) and the Valgrind tool (powercut run)
    /// record the same routine on its clflush path: the same cases fail, by the same rules.
    @Test func bothRecordersGiveTheSameVerdictsOverAGrid() throws {
        let scratch = Scratch()
        let subjects = packageRoot.appendingPathComponent("Sources/CPowercutSubjects").path
        let sources = ((try? FileManager.default.contentsOfDirectory(atPath: subjects)) ?? [])
            .filter { $0.hasSuffix(".c") }.map { subjects + "/" + $0 }
        // The subjects' own sources, at -O2 as the package builds them (and with gcc's
        // debug info, which Valgrind 3.19 reads).
        let exe = try Self.compile(Self.gridProgram, "grid", in: scratch, flags: ["-O2", "-I", subjects + "/include"] + sources)
        let dsts = [0, 1, 7, 8, 31, 56, 60, 63]
        let sizes = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 100]
        let env = ["POWERCUT_WRITEBACK": "clflush"]
        for subject in ["copy_user_flushcache_2017", "copy_user_flushcache_2023", "memcpy_to_pmem_2015"] {
            let sweep = try powercut(["sweep", subject, "--dst-offsets", dsts.map(String.init).joined(separator: ","),
                                      "--sizes", sizes.map(String.init).joined(separator: ","), "--format", "json"],
                                     in: scratch.url, environment: env)
            #expect(sweep.status == 0 || sweep.status == 1, "\(sweep.stderr)")
            var expected: [String: Set<String>] = [:]
            let sweepJSON = try JSONSerialization.jsonObject(with: Data(sweep.stdout.utf8)) as? [String: Any]
            for routine in sweepJSON?["routines"] as? [[String: Any]] ?? [] {
                for c in routine["failingCases"] as? [[String: Any]] ?? [] {
                    let key = "\(c["dstOffset"] as? Int ?? -1)+\(c["size"] as? Int ?? -1)"
                    expected[key] = Set((c["rules"] as? [String: Any] ?? [:]).keys)
                }
            }

            let pool = scratch.path("pool-" + subject)
            let run = try powercut(["run", "--pmem-file", pool, "--op", subject + "=flushcache", "--format", "json", "--",
                                    exe, pool, subject, dsts.map(String.init).joined(separator: ","),
                                    sizes.map(String.init).joined(separator: ",")], in: scratch.url, environment: env)
            #expect(run.status == (expected.isEmpty ? 0 : 1), "\(subject): \(run.stderr)")
            var found: [String: Set<String>] = [:]
            let runJSON = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
            let trace = (runJSON?["traces"] as? [[String: Any]])?.first
            #expect(trace?["ops"] as? Int == dsts.count * sizes.count, "\(subject): one op per case")
            for f in trace?["findings"] as? [[String: Any]] ?? [] {
                guard let op = f["op"] as? Int, let rule = f["rule"] as? String, f["severity"] as? String == "error" else { continue }
                let k = op - 1
                found["\(dsts[k / sizes.count])+\(sizes[k % sizes.count])", default: []].insert(rule)
            }
            #expect(found == expected, "\(subject): run and sweep disagree")
            if subject == "copy_user_flushcache_2017" { #expect(!expected.isEmpty, "the 2017 routine strands tail bytes") }
        }
    }
}

/// `powercut import pmemcheck`: a pmemcheck --log-stores=yes log becomes a trace.
@Suite struct ImportPmemcheckTests {
    static let log = """
        ==4242== pmemcheck-1.0, a simple persistent store checker
        ==4242== Command: ./prog
        ==4242==
        |REGISTER_FILE;/mnt/pmem/pool;0x10000;0x1000;0x0|STORE;0x10000;0x2a;0x8|FLUSH;0x10000;0x40|FENCE|STORE;0x10040;0x201;0x2|STORE;0x10080;0x1122334455667788;0x8|FLUSH;0x10080;0x80|FENCE
        |STORE;0x20010;0x7;0x1
        ==4242== Number of stores not made persistent: 2
        ==4242== ERROR SUMMARY: 2 errors

        """

    @Test func storesFlushesAndFencesBecomeEventsWithWhatTheLogCannotTell() throws {
        let scratch = Scratch()
        let path = try scratch.write("pmc.log", Self.log)
        let r = try powercut(["import", "pmemcheck", path, "-o", scratch.path("t.pct")])
        #expect(r.status == 0, "\(r.stderr)")
        let t = try Trace(contentsOf: scratch.path("t.pct"))
        #expect(t.header.pmem == [PmemRange(base: 0x10000, length: 0x1000, name: "/mnt/pmem/pool"),
                                  PmemRange(base: 0x20000, length: 0x1000)])
        #expect(t.header.meta.contains { $0.key == "cannot-tell" && $0.value.contains("non-temporal") && $0.value.contains("flush instruction") })
        let events = t.events.filter { $0.kind != .stackDefinition && $0.kind != .mark }
        #expect(events.map(\.kind) == [.store, .clwb, .sfence, .store, .store, .clwb, .clwb, .sfence, .store])
        #expect(events.map(\.address) == [0x10000, 0x10000, 0, 0x10040, 0x10080, 0x10080, 0x100c0, 0, 0x20010])
        #expect(t.batch.data(of: events[0]) == [0x2a, 0, 0, 0, 0, 0, 0, 0])
        #expect(t.batch.data(of: events[3]) == [0x01, 0x02])
        #expect(t.batch.data(of: events[4]) == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    }

    @Test func aMalformedItemIsOneLineWithItsOffset() throws {
        let scratch = Scratch()
        let path = try scratch.write("bad.log", "==1== x\n|STORE;0x10;0x1;0x8|STORE;0x10;zz\u{1b};0x8\n")
        let r = try powercut(["import", "pmemcheck", path, "-o", scratch.path("t.pctb")])
        #expect(r.status == 65)
        #expect(r.stderr == "powercut: \(path):byte 28: bad STORE item 'STORE;0x10;zz\\x1b;0x8' (expected STORE;0xADDR;0xVALUE;0xSIZE with SIZE 1 to 8)\n")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("t.pctb")))
    }
}
