// The printers `check`, `show` and `info` use. This file and Explain.swift are the only
// ones that import the report modules.
import Foundation
import FoundationXML
import PowercutModel
import PowercutReport
import PowercutSymbolize
import PowercutTrace
import PowercutTriage

#if canImport(Glibc)
import Glibc
#endif

/// Target `replay`: what `check` does with a trace file, with every report format.
///
/// The input (text or binary) is replayed from a file, as `check FILE` does, with replay
/// options chosen by the input's hash. Then every printer runs over the result:
/// text (with the per-cut counts when recorded), brief, JSON, SARIF, JUnit and GitHub,
/// the baseline and generated suppression blocks, and `show` and `info` over the same
/// file. Checked on the way: the JSON and SARIF documents parse as JSON, the JUnit
/// document parses as XML, every GitHub line is one workflow command, and the baseline
/// and suppression blocks powercut writes are read back by powercut.
public enum ReplayTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        let path = scratchPath(input.isBinary ? "replay.pctb" : "replay.pct")
        guard writeScratch(input.bytes, to: path) else { fuzzFailure("cannot write the scratch file \(path)") }
        defer { unlink(path) }

        let checked: CheckedTrace
        do {
            let (result, reader) = try Replayer.replay(file: path, options: input.replayOptions)
            checked = CheckedTrace(file: path, form: reader.form, header: reader.header, stacks: reader.stacks, result: result)
        } catch {
            checkRejection("\(error)", what: "reader")
            return 0
        }
        renderAll([checked], cuts: input.replayOptions.recordCuts)
        showAndInfo(path)
        return 0
    }

    static func renderAll(_ traces: [CheckedTrace], cuts: Bool) {
        // No lookup: frames print as module+offset and nothing is read from disk.
        let frames = FrameResolver()
        var triage = Triage(traces, frames: frames)
        triage.locateEvents()
        let shown = triage.reportedTraces
        let summary = Summary(shown)
        _ = summary.line
        _ = triage.countsNote(baseline: false, suppressions: false)

        for t in shown {
            _ = TextReport(frames: frames).render(t)
            _ = BriefReport().render(t)
            if cuts { _ = CutsReport().render(t) }
        }
        checkJSON(JSONReport().render(shown), "JSON report")
        checkJSON(SARIFReport(toolVersion: "0.0.0-fuzz").render(triage), "SARIF report")
        checkXML(JUnitReport(frames: frames).render(triage), "JUnit report")
        checkGitHub(GitHubReport().render(triage))

        let baselineText = triage.baselineText
        do {
            let baseline = try Baseline.parse(baselineText, file: "fuzz-baseline")
            // A baseline lists the fingerprint of each part of a finding (each missing
            // write-back), and knows a finding when all its parts are listed.
            let listed = triage.entries.joined().filter { if case .suppressed = $0.status { false } else { true } }
            let expected = Set(listed.flatMap { $0.fingerprint.partPrints.map(\.hash) })
            if baseline.fingerprints != expected || !listed.allSatisfy({ baseline.contains($0.fingerprint) }) {
                checkFailed(.baseline, "the baseline written reads back as other fingerprints")
            }
        } catch {
            checkFailed(.baseline, "powercut rejects the baseline it wrote: \(error)\n\(baselineText)")
        }
        let blocks = SuppressionList.generate(triage.reportedFindings, frames: frames)
        do {
            let parsed = try SuppressionList.parse(blocks, file: "fuzz-suppressions")
            let list = SuppressionList(parsed)
            for (f, t) in triage.reportedFindings where list.match(f, in: t, frames: frames) == nil {
                checkFailed(.suppressions, "a generated suppression block does not match its finding (\(f.rule.rawValue)):\n\(blocks)")
            }
        } catch {
            checkFailed(.suppressions, "powercut rejects the suppression blocks it generated: \(error)\n\(blocks)")
        }
    }

    static func showAndInfo(_ path: String) {
        do {
            try TraceDump().render(try TraceReader(path: path)) { _ in }
            _ = try TraceInfo(reader: try TraceReader(path: path)).render()
        } catch {
            checkRejection("\(error)", what: "show/info")
        }
    }
}

func checkJSON(_ text: String, _ what: String) {
    do {
        _ = try JSONSerialization.jsonObject(with: Data(text.utf8))
    } catch {
        checkFailed(.documents, "the \(what) is not JSON (\(error)):\n\(escapedPrefix(text, max: 2000))")
    }
}

func checkXML(_ text: String, _ what: String) {
    let parser = XMLParser(data: Data(text.utf8))
    if !parser.parse() {
        let why = parser.parserError.map { "\($0)" } ?? "unknown error"
        checkFailed(.documents, "the \(what) is not well-formed XML (\(why), line \(parser.lineNumber)):\n\(escapedPrefix(text, max: 2000))")
    }
}

/// Every line a workflow command: `::error …::message`, with no raw newline inside.
func checkGitHub(_ text: String) {
    for line in text.split(separator: "\n") where !line.hasPrefix("::") {
        checkFailed(.documents, "a GitHub report line is not a workflow command: \(escapedPrefix(String(line)))")
    }
    if text.contains("\r") { checkFailed(.documents, "the GitHub report holds a raw carriage return") }
}
