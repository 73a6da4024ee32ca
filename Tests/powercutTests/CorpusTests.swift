import Foundation
import Testing

/// One expected verdict of the regression corpus: Traces/NAME.expected (or
/// NAME+VARIANT.expected for the same trace under other options) beside NAME.pct or
/// NAME.pctb. Lines: `# reasoning`, `args: …`, `exit: N`, then the `--format brief`
/// output exactly.
struct CorpusCase: CustomTestStringConvertible, Sendable {
    var expectedFile: String
    var trace: String
    var arguments: [String]
    var exitStatus: Int32
    var output: String

    var testDescription: String { expectedFile }

    static func all() -> [CorpusCase] {
        // Traces/ and its subdirectories (Traces/subjects holds recorded traces).
        let root = packageRoot.appendingPathComponent("Traces")
        let dirs = [""] + ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: root.appendingPathComponent($0).path, isDirectory: &isDir) && isDir.boolValue
        }.sorted()
        return dirs.flatMap { sub -> [CorpusCase] in
        let dir = sub.isEmpty ? root : root.appendingPathComponent(sub)
        let prefix = sub.isEmpty ? "" : sub + "/"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".expected") }.sorted().map { name in
            let base = String(name.dropLast(".expected".count))
            let traceBase = base.split(separator: "+").first.map(String.init) ?? base
            let trace = names.contains(traceBase + ".pct") ? traceBase + ".pct" : traceBase + ".pctb"
            let text = (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? ""
            var c = CorpusCase(expectedFile: prefix + name, trace: "Traces/" + prefix + trace, arguments: [], exitStatus: -1, output: "")
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("#") || line.isEmpty { continue }
                if line.hasPrefix("args:") {
                    c.arguments = line.dropFirst(5).split(separator: " ").map(String.init)
                } else if line.hasPrefix("exit:") {
                    c.exitStatus = Int32(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) ?? -1
                } else {
                    c.output += line + "\n"
                }
            }
            return c
        }
        }
    }
}

@Suite struct CorpusTests {
    @Test func theCorpusIsLargeAndCoversEveryRuleDomainAndEventKind() throws {
        let cases = CorpusCase.all()
        #expect(cases.count >= 25)
        let verdicts = cases.map(\.output).joined()
        for rule in ["not-durable", "dirty-at-return", "out-of-bounds-store", "missing-drain", "redundant-flush", "unnecessary-flush"] {
            #expect(verdicts.contains(" \(rule) "), "no expected verdict uses \(rule)")
        }
        let traces = try Set(cases.map(\.trace)).filter { $0.hasSuffix(".pct") }.map {
            try String(contentsOf: packageRoot.appendingPathComponent($0), encoding: .utf8)
        }.joined()
        for record in ["store", "ntstore", "clwb", "clflushopt", "clflush", "sfence", "mfence", "fence", "wpqflush",
                       "durable", "domain eadr", "domain wpq", "contract=persist", "contract=none", "volatile", "line-size"] {
            #expect(traces.contains("\n\(record) ") || traces.contains("\n\(record)\n") || traces.contains(record),
                    "no corpus trace has \(record)")
        }
    }

    @Test(arguments: CorpusCase.all())
    func everyTraceGivesItsExpectedVerdict(_ c: CorpusCase) throws {
        let run = try powercut(["check", "--format", "brief"] + c.arguments + [c.trace])
        #expect(run.stdout == c.output, "\(c.trace): verdict differs")
        #expect(run.status == c.exitStatus, "\(c.trace): exit \(run.status), stderr: \(run.stderr)")
    }
}
