import Foundation
import Testing

/// `record` runs the routine in a child with a time limit: whatever the routine does
/// costs one line and status 65, never powercut itself.
@Suite struct RecordCommandTests {
    func record(_ symbol: String, lib: String = "routines", _ extra: [String] = []) throws -> Run {
        try powercut(["record", "--lib", try MisbehavingRoutines.library(lib), "--symbol", symbol, "--len", "8", "-o", "-"] + extra)
    }

    /// One line on standard error, nothing on standard output, status 65.
    func expectOneLine(_ run: Run, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.status == 65, "\(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(run.stderr.hasPrefix("powercut: ") && run.stderr.contains(words), "\(run.stderr)", sourceLocation: sourceLocation)
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)", sourceLocation: sourceLocation)
    }

    @Test func crashesAreOneLineWithTheSignalsName() throws {
        expectOneLine(try record("segv"), "the routine segv crashed: killed by SIGSEGV")
        expectOneLine(try record("aborts"), "the routine aborts crashed: killed by SIGABRT")
        expectOneLine(try record("overflow"), "the routine overflow crashed: killed by SIGSEGV")
        expectOneLine(try record("ud2"), "the routine ud2 crashed: killed by SIGILL")
    }

    @Test func exitingIsReportedNeverAnEmptySuccess() throws {
        expectOneLine(try record("exits0"), "the routine ended the process")
        let three = try record("exits3")
        expectOneLine(three, "status 3")
        expectOneLine(try record("copy", lib: "constructorExits"), "constructors, before copy ran) ended the process with exit status 0")
        expectOneLine(try record("copy", lib: "constructorCrashes"), "constructors, before copy ran) crashed: killed by SIGSEGV")
    }

    @Test func takingSigtrapAwayIsReported() throws {
        expectOneLine(try record("ignores_sigtrap"), "changes the disposition of SIGTRAP")
        expectOneLine(try record("blocks_sigtrap"), "blocks SIGTRAP")
    }

    @Test func aRoutineThatSleepsRunsIntoTheTimeLimit() throws {
        expectOneLine(try record("sleeps", ["--timeout", "0.5"]), "ran longer than the time limit of 0.5 s (--timeout)")
    }

    @Test func aRoutineThatPrintsDoesNotCorruptTheTraceOnStandardOutput() throws {
        let run = try record("prints")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("powercut-trace 1\n"))
        #expect(!run.stdout.contains("hello"))
        #expect(run.stderr.contains("hello from the routine"))
        let s = Scratch()
        let trace = try s.write("t.pct", run.stdout)
        let check = try powercut(["check", "--format", "brief", trace])
        #expect(check.status == 1, "\(check.stdout)\(check.stderr)")  // memcpy: cached stores, no write-back
    }

    @Test func timeLimitsThatCannotWorkAreUsageErrors() throws {
        for t in ["0", "nan", "inf", "1e300", "-1"] {
            let run = try powercut(["record", "memcpy_flushcache", "--len", "8", "--timeout", t, "-o", "-"])
            #expect(run.status == 64, "--timeout \(t)")
            #expect(run.stdout.isEmpty)
        }
    }
}
