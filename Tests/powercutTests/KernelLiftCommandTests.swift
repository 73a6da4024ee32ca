import Foundation
import Testing

/// powercut kernel-lift and sweep --kernel-tree through the built binary, on the fake
/// trees of Tests/PowercutKernelLiftTests/Trees (written for the tests, no kernel code).
@Suite struct KernelLiftCommandTests {
    let trees = packageRoot.appendingPathComponent("Tests/PowercutKernelLiftTests/Trees").path

    @Test func kernelLiftPrintsWhoseCodeIsWhoseAndTheSweepToRun() throws {
        let s = Scratch()
        let run = try powercut(["kernel-lift", "--tree", trees + "/bug-2017", "--flush", "clflush", "-o", s.path("lift")])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("arch/x86/lib/copy_user_64.S  (__copy_user_nocache: opened with ENTRY, returns with ret, called with 4 arguments)"))
        #expect(run.stdout.contains("write-back: the tree's clwb() executes clflush"))
        #expect(run.stdout.contains("powercut sweep --lib \(s.path("lift"))/libkernel-lift.so --symbol lifted_copy_user_flushcache"))
        #expect(FileManager.default.fileExists(atPath: s.path("lift/libkernel-lift.so")))
    }

    @Test func sweepKernelTreeFindsThe2017BugAndThePatchFixesIt() throws {
        let bug = try powercut(["sweep", "--kernel-tree", trees + "/bug-2017", "--sizes", "0-9", "--dst-offsets", "56-63",
                                "--format", "json", "--quiet"])
        #expect(bug.status == 1, "\(bug.stderr)")
        let doc = try JSONSerialization.jsonObject(with: Data(bug.stdout.utf8)) as! [String: Any]
        var failing: [String: Set<[Int]>] = [:]
        for r in doc["routines"] as! [[String: Any]] {
            failing[r["routine"] as! String] = Set((r["failingCases"] as! [[String: Any]]).map { [$0["dstOffset"] as! Int, $0["size"] as! Int] })
        }
        // n < 8 crossing the line: d + n > 64, with d in 56-63.
        var expected = Set<[Int]>()
        for d in 56..<64 { for n in 0...9 where n < 8 && d + n > 64 { expected.insert([d, n]) } }
        #expect(failing["lifted_copy_user_flushcache"] == expected)
        #expect(failing["lifted_memcpy_flushcache"] == [])
        #expect(bug.stderr.contains("the shim's code"))

        let fixed = try powercut(["sweep", "--kernel-tree", trees + "/bug-2017", "--patch", trees + "/fix-2017-short-copies.patch",
                                  "--sizes", "0-9", "--dst-offsets", "56-63", "--quiet"])
        #expect(fixed.status == 0, "\(fixed.stdout)\(fixed.stderr)")
        #expect(fixed.stdout.contains("patch applied to the copy (never to the tree)"))
        #expect(fixed.stdout.contains("lifted_copy_user_flushcache  clean"))
    }

    @Test func aSweepStoppedBySIGTERMLeavesNoLiftedKernelBehind() throws {
        let s = Scratch()
        let tmp = s.path("tmp")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: powercutBinary)
        // The default grid: thousands of cases, far more than the wait below.
        p.arguments = ["sweep", "--kernel-tree", trees + "/bug-2017", "--quiet", "--jobs", "1"]
        p.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": tmp]) { $1 }
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        // Wait for the lifted library, then for the sweep to be under way.
        let lifted = { (try? FileManager.default.contentsOfDirectory(atPath: tmp))?.filter { $0.hasPrefix("powercut-kernel-lift-") } ?? [] }
        var waited = 0.0
        while waited < 120, p.isRunning,
              !lifted().contains(where: { FileManager.default.fileExists(atPath: tmp + "/" + $0 + "/libkernel-lift.so") }) {
            usleep(50_000); waited += 0.05
        }
        #expect(p.isRunning, "the sweep ended before it could be stopped")
        #expect(!lifted().isEmpty, "the lift never appeared in TMPDIR")
        usleep(500_000)
        p.terminate()   // SIGTERM
        var stopping = 0.0
        while p.isRunning && stopping < 30 { usleep(50_000); stopping += 0.05 }
        #expect(!p.isRunning, "SIGTERM did not stop the sweep")
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGTERM)
        #expect(lifted().isEmpty, "left behind: \(lifted())")
    }

    @Test func anUnknownLayoutIsOneLineAndStatus65() throws {
        let s = Scratch()
        try FileManager.default.createDirectory(atPath: s.path("empty"), withIntermediateDirectories: true)
        let run = try powercut(["kernel-lift", "--tree", s.path("empty"), "-o", s.path("lift")])
        #expect(run.status == 65)
        #expect(run.stderr == "powercut: the tree has no arch/x86/lib/usercopy_64.c (the flushcache routines); is this a Linux source tree?\n")
        let sweep = try powercut(["sweep", "--kernel-tree", s.path("empty")])
        #expect(sweep.status == 65 && sweep.stderr.split(separator: "\n").count == 1)
    }

    @Test func usageErrors() throws {
        #expect(try powercut(["kernel-lift", "--tree", "/no/such/tree"]).status == 64)
        #expect(try powercut(["kernel-lift", "--tree", trees + "/bug-2017", "--patch", "/no/such.patch"]).status == 64)
        #expect(try powercut(["kernel-lift", "--tree", trees + "/bug-2017", "--flush", "wbinvd"]).status == 64)
        #expect(try powercut(["sweep", "copy_user_flushcache_2017", "--kernel-tree", trees + "/bug-2017"]).status == 64)
    }
}
