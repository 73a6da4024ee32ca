/// A small JSON writer with a fixed key order, so the same findings always give the
/// same bytes.
public struct JSONWriter {
    public private(set) var output = ""
    private var needsComma: [Bool] = [false]
    private let pretty: Bool
    private var indent: Int { needsComma.count - 1 }

    public init(pretty: Bool = true) { self.pretty = pretty }

    /// Hands out what was written so far and forgets it (the nesting is kept), so a long
    /// document can be printed as it is written.
    public mutating func takeOutput() -> String {
        defer { output = "" }
        return output
    }

    private mutating func separator() {
        if needsComma[needsComma.count - 1] { output += "," }
        needsComma[needsComma.count - 1] = true
        if pretty && indent > 0 { output += "\n" + String(repeating: "  ", count: indent) }
    }

    private mutating func key(_ k: String?) {
        separator()
        if let k {
            output += Self.quote(k)
            output += pretty ? ": " : ":"
        }
    }

    public mutating func beginObject(_ k: String? = nil) {
        key(k)
        output += "{"
        needsComma.append(false)
    }

    public mutating func endObject() { close("}") }

    public mutating func beginArray(_ k: String? = nil) {
        key(k)
        output += "["
        needsComma.append(false)
    }

    public mutating func endArray() { close("]") }

    private mutating func close(_ c: String) {
        let had = needsComma.removeLast()
        if pretty && had { output += "\n" + String(repeating: "  ", count: indent) }
        output += c
    }

    public mutating func string(_ k: String?, _ v: String?) {
        key(k)
        output += v.map(Self.quote) ?? "null"
    }

    public mutating func number(_ k: String?, _ v: UInt64?) {
        key(k)
        output += v.map { String($0) } ?? "null"
    }

    public mutating func number(_ k: String?, _ v: Int) {
        key(k)
        output += String(v)
    }

    public mutating func bool(_ k: String?, _ v: Bool) {
        key(k)
        output += v ? "true" : "false"
    }

    public mutating func null(_ k: String?) {
        key(k)
        output += "null"
    }

    /// A pre-rendered JSON value.
    public mutating func raw(_ k: String?, _ json: String) {
        key(k)
        output += json
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
