import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// Valgrind-style suppressions: findings to leave out of a run, named by rule and call
/// stack. A file holds blocks like Valgrind's:
///
///     # the head of this routine is written back by its caller
///     {
///        copy_head_written_back_by_caller
///        powercut:dirty-at-return
///        fun:memcpy_flushcache
///        obj:*/libpmem.so*
///        ...
///     }
///
/// - the first line is the suppression's name (free text);
/// - the second is `powercut:RULE` (the rule may use the wildcards `*` and `?`). Blocks
///   for other tools (`Memcheck:Leak`, `pmemcheck:…`) are skipped, so one file can
///   serve Valgrind too; `Tool1,powercut:RULE` applies to both;
/// - then one or more frame lines, innermost frame first, matched against the
///   finding's origin stack (`Finding.originStack`: the stack of the store that left
///   the first byte range, or the deciding event's for flush notes):
///   `fun:PATTERN` matches the frame's function name (only when a symbolizer names
///   it), `obj:PATTERN` the full path of the module holding the frame (from the trace's
///   `module` records), `...` any number of frames (zero or more). Frames below the
///   last line are not compared, as in Valgrind.
///
/// `#` lines and blank lines are ignored anywhere.
public struct Suppression: Sendable, Equatable {
    public enum FramePattern: Sendable, Equatable {
        case function(String)
        case object(String)
        case anyFrames
    }

    public var name: String
    /// A pattern over rule names.
    public var rule: String
    public var frames: [FramePattern]
    /// Where the block starts (its `{` line).
    public var file: String
    public var line: Int

    public init(name: String, rule: String, frames: [FramePattern], file: String = "-", line: Int = 0) {
        self.name = name
        self.rule = rule
        self.frames = frames
        self.file = file
        self.line = line
    }

    /// "name (file:line)".
    public var label: String { "'\(name)' (\(file):\(line))" }

    public func matches(_ rule: Rule, frames stack: [StackFrame]) -> Bool {
        guard wildcardMatch(self.rule, rule.rawValue) else { return false }
        // The frame indices the patterns so far can have consumed, innermost first.
        var reachable: Set<Int> = [0]
        for p in frames {
            var next: Set<Int> = []
            switch p {
            case .anyFrames:
                if let low = reachable.min() { next = Set(low...stack.count) }
            case .function(let pattern):
                for j in reachable where j < stack.count {
                    if let name = stack[j].function, wildcardMatch(pattern, name) { next.insert(j + 1) }
                }
            case .object(let pattern):
                for j in reachable where j < stack.count {
                    if let path = stack[j].module?.path, wildcardMatch(pattern, path) { next.insert(j + 1) }
                }
            }
            if next.isEmpty { return false }
            reachable = next
        }
        return true
    }
}

/// Every suppression of a run, in file order; the first that matches a finding wins.
public struct SuppressionList: Sendable, Equatable {
    public var suppressions: [Suppression]

    public init(_ suppressions: [Suppression] = []) { self.suppressions = suppressions }

    public var isEmpty: Bool { suppressions.isEmpty }

    public static func load(_ paths: [String]) throws(ConfigFileError) -> SuppressionList {
        var all: [Suppression] = []
        for p in paths { all += try parse(readConfigFile(p), file: p) }
        return SuppressionList(all)
    }

    /// The first suppression matching a finding, if any.
    public func match(_ f: Finding, in trace: CheckedTrace, frames: FrameResolver) -> Suppression? {
        guard !suppressions.isEmpty else { return nil }
        let stack = frames.frames(f.originStack, in: trace)
        return suppressions.first { $0.matches(f.rule, frames: stack) }
    }

    public static func parse(_ text: String, file: String) throws(ConfigFileError) -> [Suppression] {
        var out: [Suppression] = []
        let lines = configLines(text)
        var i = 0
        func fail(_ line: Int, _ message: String) -> ConfigFileError { ConfigFileError(file: file, line: line, message) }
        /// The next line that is not blank or a comment, with its 1-based number.
        func next() -> (Int, Substring)? {
            while i < lines.count {
                let l = lines[i].trimmingBlanks()
                i += 1
                if !l.isEmpty && !l.hasPrefix("#") { return (i, l) }
            }
            return nil
        }
        while let (open, l) = next() {
            guard l == "{" else {
                throw fail(open, "expected '{' to start a suppression, found '\(l.prefix(40))'")
            }
            let unclosed = "suppression opened at line \(open) has no closing '}'"
            guard let (nameLine, name) = next() else { throw fail(open, unclosed) }
            if name == "}" { throw fail(nameLine, "expected the suppression's name, found '}'") }
            if name.hasPrefix("powercut:") {
                throw fail(nameLine, "expected the suppression's name before '\(name.prefix(40))' (the first line of a block names it)")
            }
            guard let (kindLine, kind) = next(), kind != "}" else {
                throw fail(nameLine + 1, "expected 'powercut:RULE' after the name")
            }
            guard let colon = kind.firstIndex(of: ":") else {
                throw fail(kindLine, "expected 'powercut:RULE' (TOOL:KIND), found '\(kind.prefix(40))'")
            }
            let tools = kind[..<colon].split(separator: ",").map { $0.trimmingBlanks() }
            let rule = String(kind[kind.index(after: colon)...].trimmingBlanks())
            guard tools.contains("powercut") else {
                // Another tool's block: skip it whole, whatever its lines are.
                while true {
                    guard let (_, l) = next() else { throw fail(open, unclosed) }
                    if l == "}" { break }
                }
                continue
            }
            if rule.isEmpty || (!rule.contains("*") && !rule.contains("?") && Rule(rawValue: rule) == nil) {
                throw fail(kindLine, "unknown rule '\(rule)' (expected \(Rule.allCases.map(\.rawValue).joined(separator: ", ")), or a pattern with * and ?)")
            }
            var frames: [Suppression.FramePattern] = []
            while true {
                guard let (n, l) = next() else { throw fail(open, unclosed) }
                if l == "}" { break }
                if l == "..." {
                    frames.append(.anyFrames)
                } else if let name = l.afterPrefix("fun:") {
                    frames.append(.function(name))
                } else if let path = l.afterPrefix("obj:") {
                    frames.append(.object(path))
                } else {
                    throw fail(n, "expected a frame line (fun:NAME, obj:PATH or ...) or '}', found '\(l.prefix(40))'")
                }
            }
            if frames.isEmpty {
                throw fail(open, "suppression '\(name)' has no frame line (fun:, obj: or ...); '...' alone matches any stack")
            }
            out.append(Suppression(name: String(name), rule: rule, frames: frames, file: file, line: open))
        }
        return out
    }

    /// `--gen-suppressions`: a block per finding that would suppress it, naming each
    /// frame by function when a symbolizer knows it, else by module path; frames in no
    /// module become `...` (they cannot be matched), and trailing ones are dropped.
    /// Identical blocks are printed once.
    public static func generate(_ findings: [(Finding, CheckedTrace)], frames: FrameResolver) -> String {
        var out = ""
        var seen: Set<String> = []
        for (f, t) in findings {
            var lines: [String] = []
            for frame in frames.frames(f.originStack, in: t) {
                if let function = frame.function {
                    lines.append("fun:\(function)")
                } else if let module = frame.module {
                    lines.append("obj:\(module.path)")
                } else if lines.last != "..." {
                    lines.append("...")
                }
            }
            while lines.last == "..." { lines.removeLast() }
            let named = !lines.isEmpty
            if !named { lines = ["..."] }
            let name = f.op.map { "\(f.rule.rawValue) in \($0.name ?? "op \($0.id)")" } ?? f.rule.rawValue
            var block = "{\n   \(oneLine(name))\n   powercut:\(f.rule.rawValue)\n"
            for l in lines { block += "   \(oneLine(l))\n" }
            block += "}\n"
            guard seen.insert(block).inserted else { continue }
            if !named {
                out += "# no frame of this finding's stack is in a module or named by a symbolizer:\n"
                out += "# this block suppresses every \(f.rule.rawValue) finding; narrow it by hand\n"
            }
            out += block
        }
        return out
    }
}

/// Valgrind's wildcards: `*` matches any run of characters (also `/`), `?` any one.
public func wildcardMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.unicodeScalars)
    let t = Array(text.unicodeScalars)
    var i = 0, j = 0
    var star: Int? = nil
    var resume = 0
    while j < t.count {
        if i < p.count && (p[i] == "?" || p[i] == t[j]) {
            i += 1
            j += 1
        } else if i < p.count && p[i] == "*" {
            star = i
            resume = j
            i += 1
        } else if let s = star {
            i = s + 1
            resume += 1
            j = resume
        } else {
            return false
        }
    }
    while i < p.count && p[i] == "*" { i += 1 }
    return i == p.count
}

extension Substring {
    /// The rest after `prefix` when the line starts with it and has more, compared as
    /// bytes: a name or path that begins with a combining mark (U+030A) joins the
    /// prefix's ':' into one Character, so a Character comparison would miss it.
    func afterPrefix(_ prefix: String) -> String? {
        guard utf8.count > prefix.utf8.count, utf8.starts(with: prefix.utf8) else { return nil }
        return String(Substring(utf8.dropFirst(prefix.utf8.count)))
    }
}
