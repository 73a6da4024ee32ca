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

        let frames = symbols.resolver()
        defer { symbols.finish(frames, notes: false) }
        let sourceRoot = self.sourceRoot.map(SourceRoot.init) ?? .current
        let toFile = report.map { $0 != "-" } ?? false
        let file = toFile ? try OutputFile(path: report!) : nil
        let out: ReportOutput = file ?? Spool()

        // Text, brief and JSON print each trace once it and those before it are done, so
        // only the traces in flight are held; the other formats need the whole run.
        let streamed = format == .text || format == .brief || format == .json
        var tally = Tally()
        var json = format == .json ? JSONReport.Stream(to: out) : nil
        var held: [CheckedTrace] = []
        // JUnit's ops: each trace's spool moves into the log once the trace is done.
        let opLog = OpLog()
        let pool = ReplayPool(count: files.count, jobs: jobCount) { i, stop in
            try Self.replay(files[i], options: options, cuts: cutsForm, perOp: perOp, stop: stop)
        }
        try pool.run { _, trace in
            guard streamed else {
                if let ops = trace.ops { try opLog.add(ops) }
                return held.append(trace.checked)
            }
            frames.prefetch([trace.checked])
            let triage = Triage([trace.checked], suppressions: suppressionList, baseline: known, frames: frames)
            tally.add(triage, keepFindings: genSuppressions, keepBaseline: writeBaseline != nil)
            let t = triage.reportedTraces[0]
            switch format {
            case .json:
                try json!.add(t, cuts: trace.cuts)
            case .brief:
                try out.write(BriefReport().render(t))
            default:
                try out.write(TextReport(frames: frames).render(t))
                if cuts {
                    try out.write("\n")
                    try CutsReport().render(t, series: trace.cuts, to: out)
                }
            }
        }
        if !streamed {
            var triage = Triage(held, suppressions: suppressionList, baseline: known, frames: frames)
            frames.prefetch(triage.traces)
            if format == .sarif || format == .github { triage.locateEvents() }
            tally.add(triage, keepFindings: genSuppressions, keepBaseline: writeBaseline != nil)
            switch format {
            case .sarif:
                try out.write(SARIFReport(toolVersion: PowercutVersion.release, sourceRoot: sourceRoot).render(triage))
            case .junit:
                try JUnitReport(frames: frames).render(triage, ops: opLog, to: out)
            default:
                try out.write(GitHubReport(sourceRoot: sourceRoot).render(triage))
            }
        }
        var note = tally.countsNote(baseline: baseline != nil, suppressions: !suppressions.isEmpty)
        if tally.unchecked > 0 { note += "; nothing checked in \(count(tally.unchecked, "trace"))" }
        switch format {
        case .json:
            try json!.finish()
        case .github:
            try out.write("powercut: \(tally.summary.line)\(note)\n")
        case .text:
            try out.write("powercut: \(tally.summary.line)\(note)\n")
            for (s, n) in tally.usedSuppressions {
                try out.write("powercut: suppressed \(n) finding\(n == 1 ? "" : "s") with \(s.label)\n")
            }
        default:
            break
        }
        // The baseline before the report: if it cannot be written, nothing claims success.
        if let writeBaseline {
            try writeOutput(Baseline.render(tally.baselineRows), to: writeBaseline)
        }
        var blocks = ""
        if genSuppressions {
            blocks = SuppressionList.generate(tally.reportedFindings, frames: frames)
        }
        if let file {
            try file.commit()
            if !blocks.isEmpty { try writeStdout(blocks) }
        } else if let spool = out as? Spool {
            try copyToStdout(spool)
            if !blocks.isEmpty { try writeStdout((format == .text ? "\n" : "") + blocks) }
        }
        if tally.reportedErrors > 0 { throw ExitCode(errorExitcode) }
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
        guard try replayer.apply(reader, continuing: { !stop() }) else { throw Stopped() }
        let result = replayer.finish(names: reader.names)
        try cutSpool?.check()
        try opSpool?.check()
        opSpool?.names = reader.names
        return ReplayedTrace(checked: CheckedTrace(file: file, form: reader.form, header: reader.header,
                                                   stacks: reader.stacks, result: result),
                             cuts: cutSpool, ops: opSpool)
    }
}

/// What a check adds up over its traces, triaged one at a time or all at once: the
/// summary line, the baseline and suppression counts, and what --write-baseline and
/// --gen-suppressions need (kept only when asked for).
struct Tally {
    var summary = Summary()
    var unchecked = 0
    var known = 0
    var suppressed = 0
    var reportedErrors = 0
    var used: [(suppression: Suppression, count: Int)] = []
    var baselineRows: [(fingerprint: Fingerprint, trace: String)] = []
    var reportedFindings: [(Finding, CheckedTrace)] = []

    mutating func add(_ triage: Triage, keepFindings: Bool, keepBaseline: Bool) {
        for t in triage.reportedTraces {
            summary.add(t.result)
            if !t.result.checkedAnything { unchecked += 1 }
        }
        known += triage.knownCount
        suppressed += triage.suppressedCount
        reportedErrors += triage.reportedErrors
        for (s, n) in triage.usedSuppressions {
            if let i = used.firstIndex(where: { $0.suppression == s }) { used[i].count += n } else { used.append((s, n)) }
        }
        if keepBaseline {
            for (t, es) in zip(triage.traces, triage.entries) {
                for e in es {
                    if case .suppressed = e.status { continue }
                    baselineRows.append((e.fingerprint, t.file))
                }
            }
        }
        if keepFindings { reportedFindings += triage.reportedFindings }
    }

    /// As `Triage.usedSuppressions`: in the order of the files.
    var usedSuppressions: [(suppression: Suppression, count: Int)] {
        used.sorted { ($0.suppression.file, $0.suppression.line) < ($1.suppression.file, $1.suppression.line) }
    }

    /// As `Triage.countsNote`.
    func countsNote(baseline: Bool, suppressions: Bool) -> String {
        var parts: [String] = []
        if baseline { parts.append("\(known) known from the baseline") }
        if suppressions { parts.append("\(suppressed) suppressed") }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")"
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
