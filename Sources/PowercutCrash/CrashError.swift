import Glibc
import PowercutTrace

/// Why crash images cannot be made or checked: one line for the user, and the exit
/// status it maps to (64 usage, 65 bad data, 70 internal).
public struct CrashError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The command line names something that cannot work (a missing library, function, range).
        case usage
        /// The trace or an input file cannot give images (a store without data, a wrong-sized file).
        case badData
        /// Something the machine refused (a pipe, a fork, a write).
        case system
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public var exitStatus: Int32 {
        switch kind {
        case .usage: 64
        case .badData: 65
        case .system: 70
        }
    }
}

/// Quotes at most ~80 bytes of user text, with control bytes escaped, for one-line errors.
func quoted(_ s: String) -> String {
    var out = ""
    for (i, u) in s.utf8.enumerated() {
        if i == 80 { out += "…"; break }
        if u < 0x20 || u >= 0x7f || u == UInt8(ascii: "\\") || u == UInt8(ascii: "'") {
            out += "\\x" + String(u, radix: 16, uppercase: false).leftPadded(2)
        } else {
            out.unicodeScalars.append(Unicode.Scalar(u))
        }
    }
    return "'" + out + "'"
}

extension String {
    func leftPadded(_ n: Int, with c: Character = "0") -> String {
        count >= n ? self : String(repeating: c, count: n - count) + self
    }
}

/// `0x1f40`.
func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func errnoText() -> String { String(cString: strerror(errno)) }
