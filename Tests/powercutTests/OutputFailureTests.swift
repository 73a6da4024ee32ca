import Foundation
import Testing

/// Where the output goes wrong: a full disk, a bad exit-status option, an empty file
/// name, a malformed trace converted to standard output.
@Suite struct OutputFailureTests {
    let failing = "Traces/adr-tail-not-written-back.pct"

    /// Runs powercut with standard output on /dev/full.
    func toFullDevice(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: powercutBinary)
        p.arguments = arguments
        p.currentDirectoryURL = packageRoot
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        let s = Scratch()
        FileManager.default.createFile(atPath: s.path("err"), contents: nil)
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: s.path("err")))
        p.standardOutput = full
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        try err.close()
        return (p.terminationStatus, (try? String(contentsOfFile: s.path("err"), encoding: .utf8)) ?? "")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full")))
    func aFullStandardOutputIsOneLineAndExit70() throws {
        for args in [["check", failing], ["check", "Traces/adr-example-clean.pct"], ["check", "--format", "sarif", failing],
                     ["explain", failing], ["show", failing], ["info", failing], ["convert", failing, "-"]] {
            let run = try toFullDevice(args)
            #expect(run.status == 70, "\(args): exit \(run.status)")
            #expect(run.stderr == "powercut: cannot write to standard output: No space left on device\n", "\(args)")
        }
    }

    @Test func errorExitcodeIsOneTo255() throws {
        for bad in ["0", "256", "-1", "1000"] {
            let run = try powercut(["check", "--error-exitcode", bad, failing])
            #expect(run.status == 64, "--error-exitcode \(bad)")
            #expect(run.stdout.isEmpty)
        }
        #expect(try powercut(["check", "--error-exitcode", "255", failing]).status == 255)
        #expect(try powercut(["check", "--help"]).stdout.contains("1-255"))
    }

    @Test func anEmptyFileNameIsAUsageError() throws {
        let run = try powercut(["check", "-o", "", failing])
        #expect(run.status == 64)
        #expect(run.stderr.contains("-o/--output needs a file name ('-' is standard output)"))
        #expect(try powercut(["check", "--write-baseline", "", failing]).status == 64)
        #expect(try powercut(["explain", "--svg", "", failing]).status == 64)
    }

    @Test func convertingABadTraceWritesNothingToStandardOutput() throws {
        // Valid for thousands of lines, then malformed.
        var text = "powercut-trace 1\npmem 0 0x100000\n"
        for i in 0..<20_000 { text += "store 0x\(String(i * 8, radix: 16)) 8\n" }
        text += "stor 0 8\n"
        let s = Scratch()
        let bad = try s.write("bad.pct", text)
        for form in ["text", "binary"] {
            let run = try powercut(["convert", "--to", form, bad, "-"])
            #expect(run.status == 65, "\(form)")
            #expect(run.stdout.isEmpty, "\(form): \(run.stdout.utf8.count) bytes on standard output")
            #expect(run.stderr.contains("unknown record 'stor'"))
        }
        // A good trace still converts to standard output, as it converts to a file.
        let file = s.path("good.pct")
        #expect(try powercut(["convert", "--to", "text", "Traces/adr-example-clean.pct", file]).status == 0)
        let good = try powercut(["convert", "--to", "text", "Traces/adr-example-clean.pct", "-"])
        let converted = try String(contentsOfFile: file, encoding: .utf8)
        #expect(good.status == 0 && good.stdout == converted)
    }

    @Test func countsAreSingularOrPlural() throws {
        let s = Scratch()
        let one = try s.write("one.pct", "powercut-trace 1\npmem 0 0x40\nstore 0 1 data=ab\n")
        let show = try powercut(["show", one])
        #expect(show.stdout.hasSuffix("== 1 event\n"), "\(show.stdout)")
        let check = try powercut(["check", one])
        #expect(check.stdout.hasPrefix("== \(one): 1 event, 0 ops, domain adr, 64-byte lines\n"), "\(check.stdout)")
    }
}

@Suite struct VersionTests {
    @Test func theVersionNamesTheTraceFormatAndTheLibrariesLoaded() throws {
        let v = try powercut(["--version"])
        #expect(v.status == 0)
        #expect(v.stdout.hasPrefix("0.1.0 (commit "), "\(v.stdout)")
        #expect(v.stdout.contains("; trace format: text 1, binary 1; capstone "), "\(v.stdout)")
        // The commit this checkout is at, as the build stamped it.
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        git.arguments = ["-C", packageRoot.path, "rev-parse", "--short=12", "HEAD"]
        let pipe = Pipe()
        git.standardOutput = pipe
        git.standardError = FileHandle.nullDevice
        if (try? git.run()) != nil {
            git.waitUntilExit()
            let head = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if git.terminationStatus == 0 && !head.isEmpty {
                #expect(v.stdout.hasPrefix("0.1.0 (commit \(head)"), "built from \(head): \(v.stdout)")
            }
        }
        #expect(!v.stdout.contains("not loaded"), "the recorder links capstone and libunwind: \(v.stdout)")
        #expect(v.stdout.contains("; libunwind libunwind"), "\(v.stdout)")
    }
}
