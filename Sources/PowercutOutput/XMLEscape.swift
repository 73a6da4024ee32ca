/// Escapes text for XML 1.0: `& < >` everywhere, quotes and line breaks in attribute
/// values (as character references, so they survive attribute normalization), and
/// characters XML 1.0 cannot carry at all (other control characters, U+FFFE, U+FFFF)
/// as a visible `\u{…}`.
public func xmlEscape(_ s: String, attribute: Bool = true) -> String {
    var out = ""
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"" where attribute: out += "&quot;"
        case "'" where attribute: out += "&apos;"
        case "\n" where attribute: out += "&#10;"
        case "\r": out += "&#13;"
        case "\t" where attribute: out += "&#9;"
        case "\n", "\t": out.unicodeScalars.append(u)
        default:
            if u.value < 0x20 || u.value == 0xFFFE || u.value == 0xFFFF {
                out += "\\u{\(String(u.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}
