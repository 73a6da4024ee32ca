import Foundation
import Testing

/// `run` takes check's options from the same option group as `check`: the same names,
/// checks and help, validated before any program runs.
@Suite struct RunOptionsTests {
    @Test func checkOptionsAreValidatedBeforeTheProgramRuns() throws {
        let s = Scratch()
        let marker = s.path("ran")
        for bad in [["--format", "xml"], ["--jobs", "0"], ["--max-findings", "0"], ["--error-exitcode", "256"],
                    ["--baseline", ""], ["--format", "sarif", "--gen-suppressions"]] {
            let run = try powercut(["run"] + bad + ["--", "/usr/bin/touch", marker])
            #expect(run.status == 64, "\(bad): \(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: marker), "\(bad): the program ran")
        }
        let genSupp = try powercut(["run", "--format", "sarif", "--gen-suppressions", "--", "/bin/true"])
        #expect(genSupp.stderr.contains("write the report elsewhere with --report FILE"))
        let noProgram = try powercut(["run", "--format", "json"])
        #expect(noProgram.status == 64 && noProgram.stderr.contains("name the program after '--'"))
    }

    @Test func helpListsCheckOptionsUnderTheirOwnHeading() throws {
        let run = try powercut(["run", "--help"])
        #expect(run.status == 0)
        #expect(run.stdout.contains("CHECK OPTIONS:"))
        for option in ["--format <format>", "--baseline <file>", "--suppressions <file>", "--domain <domain>",
                       "--error-exitcode <N>", "--cuts", "--jobs <N>", "--report <file>", "--trace <file>"] {
            #expect(run.stdout.contains(option), "\(option)")
        }
        let check = try powercut(["check", "--help"])
        for option in ["--format <format>", "--output <output>", "--jobs <N>", "--gen-suppressions"] {
            #expect(check.stdout.contains(option), "\(option)")
        }
    }
}
