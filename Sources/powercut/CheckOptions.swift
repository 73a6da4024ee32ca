import ArgumentParser
import PowercutModel
#if canImport(Glibc)
import Glibc
#endif

/// The options that say how traces are checked and reported, shared by `check` and
/// `run` (which checks the trace it records exactly as `check` does). Where the report
/// goes is each command's own option: `-o/--output` for check, `--report` for run
/// (whose `-o` keeps the trace).
struct CheckOptions: ParsableArguments {
    @OptionGroup var model: ModelOptions
    @OptionGroup var symbols: SymbolOptions

    @Option(help: "Report format: text, json, brief, sarif (SARIF 2.1.0), junit (JUnit XML) or github (workflow annotations).")
    var format: ReportFormat = .text

    @Option(help: ArgumentHelp("SARIF and GitHub paths are relative to DIR (default: the current directory).", valueName: "dir"))
    var sourceRoot: String?

    @Option(help: ArgumentHelp("Keep at most N findings per trace in the report; the rest are counted (a findings-omitted note) and still count toward the exit status.", valueName: "N"))
    var maxFindings = 100_000

    @Flag(help: "Also show, per cut point, the at-risk bytes by state (text and json).")
    var cuts = false

    @Option(help: ArgumentHelp("Exit status when there are error findings: 1-255 (64, 65 and 70 would be mistaken for a usage error, bad data and an internal error).", valueName: "N"))
    var errorExitcode: Int32 = ExitStatus.findings

    @Option(help: ArgumentHelp("Known findings: only findings whose fingerprint is not in FILE fail the run.", valueName: "file"))
    var baseline: String?

    @Option(help: ArgumentHelp("Write the fingerprints of the current (unsuppressed) findings to FILE, crash-safely.", valueName: "file"))
    var writeBaseline: String?

    @Option(help: ArgumentHelp("Leave out findings matched by the Valgrind-style blocks in FILE (repeatable).", valueName: "file"))
    var suppressions: [String] = []

    @Flag(help: "Print a suppression block for each reported finding on standard output, after the report.")
    var genSuppressions = false

    @Option(help: ArgumentHelp("Replay up to N trace files at once (default: the number of online CPUs); the report is the same whatever N.", valueName: "N"))
    var jobs: Int?

    func validate() throws {
        if maxFindings < 1 { throw ValidationError("--max-findings \(maxFindings) is out of range (expected at least 1)") }
        if !(1...255).contains(errorExitcode) {
            throw ValidationError("--error-exitcode \(errorExitcode) is out of range (expected 1 to 255; an exit status has 8 bits and 0 means success)")
        }
        if let jobs, jobs < 1 { throw ValidationError("--jobs \(jobs) is out of range (expected at least 1)") }
        try requireName(baseline, "--baseline")
        try requireName(writeBaseline, "--write-baseline")
        try requireName(sourceRoot, "--source-root")
        for s in suppressions { try requireName(s, "--suppressions") }
    }

    /// `--gen-suppressions` prints on standard output: not beside a document there.
    /// `report` is where the report goes, `reportOption` the option that says so.
    func validate(report: String?, reportOption: String) throws {
        if genSuppressions && format.isDocument && (report == nil || report == "-") {
            throw ValidationError("--gen-suppressions prints to standard output, which --format \(format.rawValue) needs whole; write the report elsewhere with \(reportOption) FILE")
        }
    }

    /// How many traces to replay at once.
    var jobCount: Int {
        if let jobs { return jobs }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
