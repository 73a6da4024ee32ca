/// The strings of a trace (module paths, op, mark and range names, meta keys and
/// values) may hold any bytes, including bytes that are not UTF-8. In memory they are
/// Swift `String`s in *display form*, which keeps every byte and is safe to print:
///
/// - printable UTF-8 stands for itself (spaces included);
/// - a backslash is written `\x5c`;
/// - every other byte — a control byte (newline, CR, NUL, ESC …), DEL, a byte of a C1
///   control character (U+0080–U+009F) or of a sequence that is not valid UTF-8 — is
///   written `\xHH` (two lower-case hex digits).
///
/// The mapping from bytes to display form is one-to-one, so `bytes(of:)` gives back
/// exactly the bytes a trace held, and a display string is always one line that cannot
/// move a terminal's cursor. A string made elsewhere (a recorder's op name) is turned
/// into bytes the same way: `\xHH` stands for that byte, anything else for its UTF-8.
///
/// The text form escapes a little more (see `appendTextField`): spaces, tabs and `#`
/// would change how its line is read.
public enum TraceText {
    /// The longest string a trace may hold, in bytes (both forms).
    public static let maxLength = 1 << 20

    /// The display form of raw bytes.
    public static func display(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if isPlain(bytes) { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        appendDisplay(bytes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func display(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { display($0) }
    }

    /// The bytes a display-form string stands for.
    public static func bytes(of s: String) -> [UInt8] {
        var out: [UInt8] = []
        var utf8 = Array(s.utf8)
        if !utf8.contains(0x5C) { return utf8 }
        out.reserveCapacity(utf8.count)
        utf8.withUnsafeMutableBufferPointer { p in
            var i = 0
            let n = p.count
            while i < n {
                if p[i] == 0x5C, i + 3 < n, p[i + 1] == 0x78, let hi = hexDigit(p[i + 2]), let lo = hexDigit(p[i + 3]) {
                    out.append(hi << 4 | lo)
                    i += 4
                } else {
                    out.append(p[i])
                    i += 1
                }
            }
        }
        return out
    }

    /// A string quoted in a message: its display form, cut after at most `limit` bytes
    /// of it (escapes included), with `…` when cut. Always one short line.
    static func quote(_ bytes: UnsafeBufferPointer<UInt8>, limit: Int = 80) -> String {
        if bytes.count <= limit / 4 || (bytes.count <= limit && isPlain(bytes)) { return display(bytes) }
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            let len = c >= 0x80 ? (printableSequence(bytes, at: i) ?? 1) : 1
            var piece: [UInt8] = []
            appendDisplay(UnsafeBufferPointer(rebasing: bytes[i..<(i + len)]), into: &piece)
            if out.count + piece.count > limit { return String(decoding: out, as: UTF8.self) + "…" }
            out += piece
            i += len
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func quote(_ s: String, limit: Int = 80) -> String {
        bytes(of: s).withUnsafeBufferPointer { quote($0, limit: limit) }
    }

    // MARK: Text form

    /// How a free-text field is escaped in the text form.
    enum Field {
        /// A module path, a `name=` value, a mark name: one token.
        case token
        /// A meta value: the single spaces between words stay.
        case metaValue
    }

    /// Appends `bytes` escaped for the text form: `\xHH` for every byte that would change
    /// how the line is read (space and tab — except the single spaces inside a meta value
    /// —, `#`, `\`, control bytes, DEL) and for bytes outside printable UTF-8, so the file
    /// stays UTF-8 text.
    static func appendTextField(_ bytes: UnsafeBufferPointer<UInt8>, _ field: Field, into out: inout [UInt8]) {
        let n = bytes.count
        var i = 0
        while i < n {
            let c = bytes[i]
            if c > 0x20 && c < 0x7F {
                if c == 0x23 || c == 0x5C { appendHex(c, into: &out) } else { out.append(c) }
                i += 1
            } else if c == 0x20 && field == .metaValue && i > 0 && bytes[i - 1] != 0x20 && i + 1 < n && bytes[i + 1] != 0x20 {
                out.append(c)
                i += 1
            } else if c >= 0x80, let len = printableSequence(bytes, at: i) {
                for k in 0..<len { out.append(bytes[i + k]) }
                i += len
            } else {
                appendHex(c, into: &out)
                i += 1
            }
        }
    }

    static func appendTextField(_ s: String, _ field: Field, into out: inout [UInt8]) {
        bytes(of: s).withUnsafeBufferPointer { appendTextField($0, field, into: &out) }
    }

    /// Decodes a free-text field of the text form into `out`: `\xHH` is the byte HH; any
    /// other backslash is an error, returned as the message.
    static func decodeTextField(_ p: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> String? {
        out.removeAll(keepingCapacity: true)
        let n = p.count
        var i = 0
        while i < n {
            let c = p[i]
            if c != 0x5C {
                out.append(c)
                i += 1
                continue
            }
            guard i + 3 < n, p[i + 1] == 0x78, let hi = hexDigit(p[i + 2]), let lo = hexDigit(p[i + 3])
            else {
                let bad = UnsafeBufferPointer(rebasing: p[i..<min(n, i + 4)])
                return "malformed escape '\(quote(bad))' (a backslash must begin \\xHH, two hex digits)"
            }
            out.append(hi << 4 | lo)
            i += 4
        }
        return nil
    }

    // MARK: Bytes

    /// Whether every byte is printable ASCII other than the backslash.
    @inline(__always)
    static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for c in bytes where c < 0x20 || c >= 0x7F || c == 0x5C { return false }
        return true
    }

    static func appendDisplay(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let n = bytes.count
        var i = 0
        while i < n {
            let c = bytes[i]
            if c >= 0x20 && c < 0x7F {
                if c == 0x5C { appendHex(c, into: &out) } else { out.append(c) }
                i += 1
            } else if c >= 0x80, let len = printableSequence(bytes, at: i) {
                for k in 0..<len { out.append(bytes[i + k]) }
                i += len
            } else {
                appendHex(c, into: &out)
                i += 1
            }
        }
    }

    @inline(__always)
    static func appendHex(_ c: UInt8, into out: inout [UInt8]) {
        out.append(0x5C)
        out.append(0x78)
        out.append(hexDigits[Int(c >> 4)])
        out.append(hexDigits[Int(c & 15)])
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The length of the valid UTF-8 sequence at `i` when it encodes a character that
    /// is not a C1 control (U+0080–U+009F); nil otherwise.
    static func printableSequence(_ b: UnsafeBufferPointer<UInt8>, at i: Int) -> Int? {
        let c0 = b[i]
        let n = b.count
        func cont(_ k: Int) -> Bool { i + k < n && b[i + k] & 0xC0 == 0x80 }
        switch c0 {
        case 0xC2:
            return cont(1) && b[i + 1] >= 0xA0 ? 2 : nil  // C2 80-9F are the C1 controls
        case 0xC3...0xDF:
            return cont(1) ? 2 : nil
        case 0xE0:
            return cont(1) && cont(2) && b[i + 1] >= 0xA0 ? 3 : nil
        case 0xE1...0xEC, 0xEE, 0xEF:
            return cont(1) && cont(2) ? 3 : nil
        case 0xED:
            return cont(1) && cont(2) && b[i + 1] < 0xA0 ? 3 : nil  // no surrogates
        case 0xF0:
            return cont(1) && cont(2) && cont(3) && b[i + 1] >= 0x90 ? 4 : nil
        case 0xF1...0xF3:
            return cont(1) && cont(2) && cont(3) ? 4 : nil
        case 0xF4:
            return cont(1) && cont(2) && cont(3) && b[i + 1] < 0x90 ? 4 : nil
        default:
            return nil
        }
    }

    /// Whether every sequence of `bytes` at or above 0x80 is valid UTF-8 for a character
    /// that is not a C1 control (the bytes below 0x80 are the caller's to judge): such a
    /// field is written as it is, in both forms, and reads back the same.
    static func isPrintableUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < bytes.count {
            if bytes[i] < 0x80 { i += 1; continue }
            guard let len = printableSequence(bytes, at: i) else { return false }
            i += len
        }
        return true
    }
}
