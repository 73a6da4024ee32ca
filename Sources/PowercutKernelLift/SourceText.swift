/// Reading C and assembler source the way kernel-lift needs to: comments and the
/// insides of string and character literals blanked out (so that parentheses in an
/// inline-assembly string or a comment never confuse the search), positions kept.
struct SourceText {
    /// The text as bytes, comments and literal contents replaced by spaces; newlines kept.
    let code: [UInt8]
    let original: [UInt8]

    init(_ text: String, assembler: Bool = false) {
        original = Array(text.utf8)
        code = Self.blank(original, assembler: assembler)
    }

    private static func blank(_ s: [UInt8], assembler: Bool) -> [UInt8] {
        var out = s
        var i = 0
        let n = s.count
        func clear(_ a: Int, _ b: Int) { for k in a..<min(b, n) where out[k] != UInt8(ascii: "\n") { out[k] = 32 } }
        while i < n {
            let c = s[i]
            if c == UInt8(ascii: "/") && i + 1 < n && s[i + 1] == UInt8(ascii: "*") {
                var j = i + 2
                while j + 1 < n && !(s[j] == UInt8(ascii: "*") && s[j + 1] == UInt8(ascii: "/")) { j += 1 }
                let end = min(j + 2, n)
                clear(i, end)
                i = end
            } else if c == UInt8(ascii: "/") && i + 1 < n && s[i + 1] == UInt8(ascii: "/") {
                var j = i
                while j < n && s[j] != UInt8(ascii: "\n") { j += 1 }
                clear(i, j)
                i = j
            } else if c == UInt8(ascii: "\"") || (c == UInt8(ascii: "'") && !assembler) {
                var j = i + 1
                while j < n && s[j] != c && s[j] != UInt8(ascii: "\n") {
                    j += s[j] == UInt8(ascii: "\\") ? 2 : 1
                }
                clear(i + 1, j)
                i = min(j + 1, n)
            } else {
                i += 1
            }
        }
        return out
    }

    static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95
    }

    /// Offsets where `word` occurs as a whole identifier in the code.
    func occurrences(of word: String) -> [Int] {
        let w = Array(word.utf8)
        guard !w.isEmpty, w.count <= code.count else { return [] }
        var hits: [Int] = []
        var i = 0
        while i + w.count <= code.count {
            if code[i] == w[0] && Array(code[i..<(i + w.count)]) == w
                && (i == 0 || !Self.isWordByte(code[i - 1]))
                && (i + w.count == code.count || !Self.isWordByte(code[i + w.count])) {
                hits.append(i)
                i += w.count
            } else {
                i += 1
            }
        }
        return hits
    }

    func skipSpace(_ i: Int) -> Int {
        var j = i
        while j < code.count && (code[j] == 32 || code[j] == 9 || code[j] == 10 || code[j] == 13 || code[j] == 92) { j += 1 }
        return j
    }

    /// For an opening parenthesis at `open`: the offset just past its match and the
    /// number of top-level arguments inside (0 for "()"), or nil when unbalanced.
    func parenthesised(at open: Int) -> (end: Int, arguments: Int)? {
        guard open < code.count, code[open] == UInt8(ascii: "(") else { return nil }
        var depth = 0
        var commas = 0
        var sawSomething = false
        var i = open
        while i < code.count {
            let c = code[i]
            if c == UInt8(ascii: "(") || c == UInt8(ascii: "[") || c == UInt8(ascii: "{") {
                depth += 1
                if depth > 1 { sawSomething = true }
            } else if c == UInt8(ascii: ")") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") {
                depth -= 1
                if depth == 0 { return (i + 1, sawSomething ? commas + 1 : 0) }
            } else if c == UInt8(ascii: ",") && depth == 1 {
                commas += 1
                sawSomething = true
            } else if c != 32 && c != 9 && c != 10 && c != 13 {
                sawSomething = true
            }
            i += 1
        }
        return nil
    }

    /// For an opening brace at `open`: the offset just past its matching brace.
    func braced(at open: Int) -> Int? {
        var depth = 0
        var i = open
        while i < code.count {
            if code[i] == UInt8(ascii: "{") { depth += 1 }
            if code[i] == UInt8(ascii: "}") {
                depth -= 1
                if depth == 0 { return i + 1 }
            }
            i += 1
        }
        return nil
    }

    /// The 1-based line of an offset.
    func line(of offset: Int) -> Int {
        1 + code[0..<min(offset, code.count)].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
    }

    // MARK: C

    /// A C function definition: `name(parameters) {body}`.
    struct Definition {
        var name: String
        var parameters: Int
        var body: Range<Int>
        var line: Int
    }

    /// The definition of function `name`, if this C text has one.
    func cDefinition(of name: String) -> Definition? {
        for at in occurrences(of: name) {
            let open = skipSpace(at + name.utf8.count)
            guard let (end, args) = parenthesised(at: open) else { continue }
            let next = skipSpace(end)
            guard next < code.count, code[next] == UInt8(ascii: "{"), let close = braced(at: next) else { continue }
            // A call inside an if/while followed by a block also looks like this; a
            // definition's name is preceded by a type, never by an operator or '('.
            var p = at - 1
            while p >= 0 && (code[p] == 32 || code[p] == 9 || code[p] == 10) { p -= 1 }
            if p >= 0 && !Self.isWordByte(code[p]) && code[p] != UInt8(ascii: "*") { continue }
            if p >= 0 && Self.isWordByte(code[p]) {
                var q = p
                while q >= 0 && Self.isWordByte(code[q]) { q -= 1 }
                let word = String(decoding: code[(q + 1)...p], as: UTF8.self)
                if ["return", "if", "while", "else", "do", "case"].contains(word) { continue }
            }
            return Definition(name: name, parameters: args, body: next..<close, line: line(of: at))
        }
        return nil
    }

    /// Calls of `name` within `range`: the argument count of each, in order.
    func calls(of name: String, in range: Range<Int>) -> [(offset: Int, arguments: Int)] {
        occurrences(of: name).compactMap { at in
            guard range.contains(at) else { return nil }
            let open = skipSpace(at + name.utf8.count)
            guard let (_, args) = parenthesised(at: open) else { return nil }
            return (at, args)
        }
    }

    /// Every identifier called within `range` (name followed by '('), in order, once each.
    func calledNames(in range: Range<Int>) -> [String] {
        var names: [String] = []
        var i = range.lowerBound
        while i < range.upperBound {
            guard Self.isWordByte(code[i]), i == 0 || !Self.isWordByte(code[i - 1]) else { i += 1; continue }
            var j = i
            while j < range.upperBound && Self.isWordByte(code[j]) { j += 1 }
            let k = skipSpace(j)
            if k < code.count && code[k] == UInt8(ascii: "(") {
                let name = String(decoding: code[i..<j], as: UTF8.self)
                if !names.contains(name) { names.append(name) }
            }
            i = j
        }
        return names
    }

    // MARK: Preprocessor and assembler

    /// The `#include <path>` and `#include "path"` lines, in order.
    func includes() -> [(path: String, line: Int)] {
        var result: [(String, Int)] = []
        var lineNumber = 0
        for rawLine in original.split(separator: 10, omittingEmptySubsequences: false) {
            lineNumber += 1
            var s = Substring(String(decoding: rawLine, as: UTF8.self))
            s = s.drop { $0 == " " || $0 == "\t" }
            guard s.hasPrefix("#") else { continue }
            s = s.dropFirst().drop { $0 == " " || $0 == "\t" }
            guard s.hasPrefix("include") else { continue }
            s = s.dropFirst("include".count).drop { $0 == " " || $0 == "\t" }
            guard let open = s.first, open == "<" || open == "\"" else { continue }
            let close: Character = open == "<" ? ">" : "\""
            let rest = s.dropFirst()
            guard let end = rest.firstIndex(of: close) else { continue }
            result.append((String(rest[..<end]), lineNumber))
        }
        return result
    }

    /// The macro that opens function `name` in assembler (`SYM_FUNC_START(name)`,
    /// `ENTRY(name)`, …), or nil when the file does not define it.
    func assemblerDefinition(of name: String) -> String? {
        for at in occurrences(of: name) {
            var p = at - 1
            while p >= 0 && (code[p] == 32 || code[p] == 9) { p -= 1 }
            guard p >= 0, code[p] == UInt8(ascii: "(") else {
                // A plain `name:` label made global elsewhere counts too.
                let after = at + name.utf8.count
                if after < code.count && code[after] == UInt8(ascii: ":") && !occurrences(of: "globl").isEmpty { return "label" }
                continue
            }
            var q = p - 1
            while q >= 0 && (code[q] == 32 || code[q] == 9) { q -= 1 }
            var r = q
            while r >= 0 && Self.isWordByte(code[r]) { r -= 1 }
            guard r < q else { continue }
            let macro = String(decoding: code[(r + 1)...q], as: UTF8.self)
            if Self.definingMacros.contains(macro) { return macro }
        }
        return nil
    }

    /// Macros that open a function in the kernel's assembler, old and new.
    static let definingMacros = ["SYM_FUNC_START", "SYM_FUNC_START_LOCAL", "SYM_FUNC_START_WEAK", "SYM_FUNC_START_NOALIGN",
                                 "SYM_TYPED_FUNC_START", "SYM_CODE_START", "SYM_CODE_START_LOCAL", "ENTRY", "GLOBAL"]

    /// Names of `.macro NAME` blocks defined in this assembler text, with each block's
    /// text (from `.macro` to `.endm`, inclusive) and first line.
    func assemblerMacros() -> [(name: String, text: String, line: Int)] {
        var result: [(String, String, Int)] = []
        let lines = original.split(separator: 10, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var i = 0
        while i < lines.count {
            let t = lines[i].drop { $0 == " " || $0 == "\t" }
            if t.hasPrefix(".macro") {
                let name = t.dropFirst(".macro".count).drop { $0 == " " || $0 == "\t" }.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                var j = i
                while j < lines.count && !lines[j].drop(while: { $0 == " " || $0 == "\t" }).hasPrefix(".endm") { j += 1 }
                if j < lines.count && !name.isEmpty {
                    result.append((String(name), lines[i...j].joined(separator: "\n") + "\n", i + 1))
                }
                i = j + 1
            } else {
                i += 1
            }
        }
        return result
    }

    /// Whether `word` appears at the start of a statement (an assembler macro
    /// invocation or instruction), ignoring labels.
    func usesStatement(_ word: String) -> Bool {
        for at in occurrences(of: word) {
            var p = at - 1
            while p >= 0 && (code[p] == 32 || code[p] == 9) { p -= 1 }
            if p < 0 || code[p] == 10 || code[p] == UInt8(ascii: ";") || code[p] == UInt8(ascii: ":") { return true }
        }
        return false
    }
}
