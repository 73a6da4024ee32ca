import ArgumentParser
import PowercutModel
import PowercutOutput
import PowercutReport
import PowercutSymbolize
import PowercutTrace
import PowercutTriage
#if canImport(Glibc)
import Glibc
#endif

/// One trace replayed for `check`: its result, and what the replay streamed aside for
/// the printer (the per-cut series, the ops), which waits in spools, not in memory.
struct ReplayedTrace: @unchecked Sendable {
    var checked: CheckedTrace
    var cuts: CutsSpool?
    var ops: OpSpool?
}

extension CheckOptions {
    /// Replays `files` (up to `jobCount` at once) and prints the report to `report`
    /// (nil or "-": standard output) as `check` does; throws `ExitCode` when reported
    /// error findings fail the run.
    func check(files: [String], report: String?) throws {
        // The configuration first: a bad file fails before any work.
        let suppressionList = try SuppressionList.load(suppressions)
        let known = try baseline.map(Baseline.load)

        var options = model.replayOptions()
        options.maxFindings = maxFindings
        let cutsForm: CutsSpool.Form? = !cuts ? nil : format == .text ? .text : format == .json ? .json : nil
        let perOp = format == .junit

        var replayed: [ReplayedTrace] = []
        let pool = ReplayPool(count: files.count, jobs: jobCount) { i, stop in
            try Self.replay(files[i], options: options, cuts: cutsForm, perOp: perOp, stop: stop)
        }
        try pool.run { _, trace in replayed.append(trace) }
        let checked = replayed.map(\.checked)

        let frames = symbols.resolver()
        defer { symbols.finish(frames, notes: false) }
        frames.prefetch(checked)
        var triage = Triage(checked, suppressions: suppressionList, baseline: known, frames: frames)
        if format == .sarif || format == .github { triage.locateEvents() }
        let shown = triage.reportedTraces
        let summary = Summary(shown)
        var note = triage.countsNote(baseline: baseline != nil, suppressions: !suppressions.isEmpty)
        let unchecked = shown.count { !$0.result.checkedAnything }
        if unchecked > 0 { note += "; nothing checked in \(count(unchecked, "trace"))" }
        let sourceRoot = self.sourceRoot.map(SourceRoot.init) ?? .current

        let toFile = report.map { $0 != "-" } ?? false
        let file = toFile ? try OutputFile(path: report!) : nil
        let out: ReportOutput = file ?? Spool()
        switch format {
        case .json:
            try JSONReport().render(shown, cuts: replayed.map(\.cuts), to: out)
        case .brief:
            for t in shown { try out.write(BriefReport().render(t)) }
        case .sarif:
            try out.write(SARIFReport(toolVersion: PowercutVersion.release, sourceRoot: sourceRoot).render(triage))
        case .junit:
            try JUnitReport(frames: frames).render(triage, ops: replayed.map(\.ops), to: out)
        case .github:
            try out.write(GitHubReport(sourceRoot: sourceRoot).render(triage) + "powercut: \(summary.line)\(note)\n")
        case .text:
            for (i, t) in shown.enumerated() {
                try out.write(TextReport(frames: frames).render(t))
                if cuts {
                    try out.write("\n")
                    try CutsReport().render(t, series: replayed[i].cuts, to: out)
                }
            }
            try out.write("powercut: \(summary.line)\(note)\n")
            for (s, n) in triage.usedSuppressions {
                try out.write("powercut: suppressed \(n) finding\(n == 1 ? "" : "s") with \(s.label)\n")
            }
        }
        // The baseline before the report: if it cannot be written, nothing claims success.
        if let writeBaseline {
            try writeOutput(triage.baselineText, to: writeBaseline)
        }
        var blocks = ""
        if genSuppressions {
            blocks = SuppressionList.generate(triage.reportedFindings, frames: frames)
        }
        if let file {
            try file.commit()
            if !blocks.isEmpty { try writeStdout(blocks) }
        } else if let spool = out as? Spool {
            try copyToStdout(spool)
            if !blocks.isEmpty { try writeStdout((format == .text ? "\n" : "") + blocks) }
        }
        if triage.reportedErrors > 0 { throw ExitCode(errorExitcode) }
    }

    /// Replays one file, streaming what the report needs beside the result into spools.
    /// `stop` says the run failed elsewhere: the replay gives up (its result is not used).
    static func replay(_ file: String, options: ReplayOptions, cuts: CutsSpool.Form?, perOp: Bool,
                       stop: () -> Bool = { false }) throws -> ReplayedTrace {
        let reader = try TraceReader(path: file)
        let cutSpool = cuts.map(CutsSpool.init)
        let opSpool = perOp ? OpSpool() : nil
        let observer: ReplayObserver? = cutSpool?.observer() ?? opSpool?.observer()
        let replayer = Replayer(header: reader.header, options: options, observer: observer)
        var batch = EventBatch()
        // Small batches stay in the cache between the reader and the model.
        var batches = 0
        while try reader.read(into: &batch, max: 512) {
            replayer.apply(batch)
            batches &+= 1
            if batches & 4095 == 0 && stop() { throw Stopped() }
        }
        let result = replayer.finish(names: reader.names)
        try cutSpool?.check()
        try opSpool?.check()
        opSpool?.names = reader.names
        return ReplayedTrace(checked: CheckedTrace(file: file, form: reader.form, header: reader.header,
                                                   stacks: reader.stacks, result: result),
                             cuts: cutSpool, ops: opSpool)
    }
}

/// A replay given up because the run already failed.
struct Stopped: Error {}

/// Copies a spooled report to standard output; a failed write is one line, exit 70.
func copyToStdout(_ spool: Spool) throws {
    try spool.forEachChunk { bytes in
        var done = 0
        while done < bytes.count {
            let n = write(1, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw stdoutFailure(errno)
            }
            done += n
        }
    }
}

/// `reporting`, with check's own errors: a bad baseline or suppression file is bad data
/// (65), a report that cannot be spooled an internal error (70).
func reportingCheck(_ body: () throws -> Void) throws {
    try reporting {
        do {
            try body()
        } catch let e as ConfigFileError {
            throw Failure.badData(e.description)
        } catch let e as SpoolError {
            throw Failure.internal(e.description)
        }
    }
}
