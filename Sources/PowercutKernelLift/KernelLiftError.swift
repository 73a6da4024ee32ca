/// Why a kernel tree could not be lifted: one line of wording and the exit status the
/// command line gives for it.
public struct KernelLiftError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A bad argument: no such tree, an output directory that cannot be used.
        case usage
        /// The tree (or a patch) is not what kernel-lift knows how to lift: a missing
        /// file or symbol, a patch that does not apply, code the shims cannot compile.
        case layout
        /// The machine lacks a tool (cc, patch, nm) or a step failed for a reason that
        /// is not the tree's.
        case environment
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// 64 usage, 65 a tree or patch it cannot lift, 70 the machine.
    public var exitStatus: Int32 {
        switch kind {
        case .usage: 64
        case .layout: 65
        case .environment: 70
        }
    }
}

/// At most `limit` characters of untrusted text, control characters escaped, for quoting
/// inside a one-line message.
func quoted(_ text: some StringProtocol, limit: Int = 80) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count >= limit { out += "…"; break }
        switch scalar {
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            out += "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(2)
        default: out.unicodeScalars.append(scalar)
        }
        count += 1
    }
    return out
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
