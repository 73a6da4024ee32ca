import Foundation
import Testing

/// Every output names a stack's frames the same way: one resolution path (callers looked
/// up at the return address − 1, inlined calls as frames). A recorded subject trace,
/// its store's stack through check's text report, JUnit, GitHub annotations, SARIF,
/// explain and show.
@Suite struct FramesAgreeTests {
    /// One frame as printed: its address, function, and `file:line` when known.
    struct Frame: Equatable, CustomStringConvertible {
        var address: UInt64
        var function: String?
        var place: String?
        var description: String { "0x\(String(address, radix: 16)) \(function ?? "?") \(place ?? "")" }
    }

    /// The `at`/`by` lines that follow the first line containing `anchor`.
    func frames(in text: String, after anchor: String) -> [Frame] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.contains(anchor) }) else { return [] }
        var out: [Frame] = []
        for line in lines[(start + 1)...] {
            let t = line.drop { $0 == " " }
            guard t.hasPrefix("at 0x") || t.hasPrefix("by 0x"), let colon = t.firstIndex(of: ":") else { break }
            let address = UInt64(t[t.index(t.startIndex, offsetBy: 5)..<colon], radix: 16) ?? 0
            let what = t[t.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            // "function (file.c:75)", "function (in /path)", "module+0x…", "???"
            if let paren = what.range(of: " (") {
                let function = String(what[..<paren.lowerBound])
                let inside = String(what[paren.upperBound...].dropLast())
                out.append(Frame(address: address, function: function, place: inside.hasPrefix("in ") ? nil : inside))
            } else {
                out.append(Frame(address: address, function: nil, place: nil))
            }
        }
        return out
    }

    /// SARIF's stack for a store: function from the logical location, file:line from the
    /// physical one.
    func sarifFrames(_ json: String, store: String) throws -> [Frame] {
        let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let results = (doc["runs"] as! [[String: Any]])[0]["results"] as! [[String: Any]]
        for r in results {
            for stack in r["stacks"] as? [[String: Any]] ?? [] {
                let label = (stack["message"] as? [String: Any])?["text"] as? String ?? ""
                guard label.contains(store) else { continue }
                return (stack["frames"] as! [[String: Any]]).map { f in
                    let location = f["location"] as! [String: Any]
                    let physical = location["physicalLocation"] as? [String: Any]
                    let address = (physical?["address"] as? [String: Any])?["absoluteAddress"] as? UInt64 ?? 0
                    let function = (location["logicalLocations"] as? [[String: Any]])?.first?["name"] as? String
                    // With a source file, the address's full name is the frame as people read it.
                    let full = (physical?["address"] as? [String: Any])?["fullyQualifiedName"] as? String
                    let uri = (physical?["artifactLocation"] as? [String: Any])?["uri"] as? String ?? ""
                    let line = (physical?["region"] as? [String: Any])?["startLine"] as? Int
                    var place: String?
                    if full != nil, let file = uri.split(separator: "/").last {
                        place = String(file) + (line.map { ":\($0)" } ?? "")
                    }
                    return Frame(address: address, function: function, place: place)
                }
            }
        }
        return []
    }

    @Test func everyOutputPrintsTheSameFramesForARecordedSubject() throws {
        let s = Scratch()
        let trace = s.path("t.pct")
        let rec = try powercut(["record", "copy_user_flushcache_2017", "--dst-offset", "58", "--len", "7", "-o", trace])
        try #require(rec.status == 0, "record: \(rec.stderr)")
        // The dirty tail byte was left by store #3 (see Traces/subjects/…-dst58-n7.expected).
        let anchor = "dirty, from store #3"
        let text = try powercut(["check", trace]).stdout
        let fromText = frames(in: text, after: anchor)
        try #require(fromText.count >= 2, "\(text)")

        // The golden fact: the store's caller is the subject at its call of the copy core,
        // not the line after the call, and not an inlined helper that follows it.
        let source = try String(contentsOf: packageRoot.appendingPathComponent("Sources/CPowercutSubjects/subjects.c"), encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        let def = try #require(lines.firstIndex { $0.hasPrefix("void copy_user_flushcache_2017(") })
        let call = try #require(lines[def...].firstIndex { $0.contains("pc_nocache_2016(dst, src, n);") })
        #expect(fromText.contains { $0.function == "copy_user_flushcache_2017" && $0.place == "subjects.c:\(call + 1)" },
                "\(fromText)")

        let junit = try powercut(["check", "--format", "junit", trace]).stdout
        #expect(frames(in: junit, after: anchor) == fromText, "junit")
        let github = try powercut(["check", "--format", "github", trace]).stdout
            .replacingOccurrences(of: "%0A", with: "\n").replacingOccurrences(of: "%25", with: "%")
        #expect(frames(in: github, after: anchor) == fromText, "github")
        let explain = try powercut(["explain", "--finding", "1", trace]).stdout
        #expect(frames(in: explain, after: "(1 byte, tail): dirty, from store #3") == fromText, "explain")
        let show = try powercut(["show", trace]).stdout
        #expect(frames(in: show, after: "#3 ") == fromText, "show")
        let sarif = try powercut(["check", "--format", "sarif", trace]).stdout
        #expect(try sarifFrames(sarif, store: "store #3") == fromText, "sarif")
    }
}
