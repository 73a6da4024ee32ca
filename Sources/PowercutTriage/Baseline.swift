import PowercutModel
import PowercutSymbolize
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

/// Why a baseline or suppression file could not be used: one line naming the file,
/// the line and what was expected (`ci.supp:4: unknown rule 'not-durabel' (expected …)`).
/// powercut exits 65 on it, like on a malformed trace.
public struct ConfigFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    /// 1-based; nil when the whole file is at fault (it cannot be read).
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Reads a whole small text file (a baseline or suppression file).
func readConfigFile(_ path: String) throws(ConfigFileError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let why = String(cString: strerror(errno))
        throw ConfigFileError(file: path, line: nil, "cannot open: \(why) (check the path and permissions)")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            let why = String(cString: strerror(errno))
            throw ConfigFileError(file: path, line: nil, "cannot read: \(why)")
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw ConfigFileError(file: path, line: nil, "not UTF-8 text")
    }
    return text
}

/// The findings a team has accepted for now: `powercut check --baseline FILE` fails
/// only on findings whose fingerprint is not in FILE. `--write-baseline FILE` writes
/// one. The format is text, one finding a line, sorted, so a review diff shows which
/// findings came and went:
///
///     powercut-baseline 1
///     # Known powercut findings. `powercut check --baseline FILE` fails only on others;
///     # regenerate with `powercut check --write-baseline FILE`. One finding a line: its
///     # fingerprint, then a note for reviewers (rule, op, bytes, innermost frame, trace).
///     1c0ffee2d3b4a596  dirty-at-return  memcpy_flushcache  tail dst+0xb 2B dirty  at libx.so+0x1a2c  (t.pct)
///
/// Blank lines and lines starting with `#` are ignored; the first other line must be
/// `powercut-baseline 1`; every later line is 16 hex digits, then optional text (the
/// note, ignored when reading).
public struct Baseline: Sendable, Equatable {
    public static let header = "powercut-baseline 1"

    public var fingerprints: Set<String>

    public init(fingerprints: Set<String> = []) { self.fingerprints = fingerprints }

    /// Whether a finding is known: its own fingerprint is listed, or that of each of its
    /// parts (each missing write-back it is made of; see `Fingerprint.parts`).
    public func contains(_ f: Fingerprint) -> Bool {
        fingerprints.contains(f.hash) || f.partPrints.allSatisfy { fingerprints.contains($0.hash) }
    }

    public static func load(_ path: String) throws(ConfigFileError) -> Baseline {
        try parse(readConfigFile(path), file: path)
    }

    public static func parse(_ text: String, file: String) throws(ConfigFileError) -> Baseline {
        var sawHeader = false
        var prints: Set<String> = []
        for (i, raw) in configLines(text).enumerated() {
            let line = raw.trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard sawHeader else {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if fields.first == "powercut-baseline" {
                    if fields.count == 2 && fields[1] == "1" { sawHeader = true; continue }
                    throw ConfigFileError(file: file, line: i + 1, "unsupported baseline version '\(fields.dropFirst().joined(separator: " "))' (this powercut reads 'powercut-baseline 1')")
                }
                throw ConfigFileError(file: file, line: i + 1, "expected '\(header)' first, found '\(line.prefix(40))' (write a baseline with --write-baseline FILE)")
            }
            let print = line.prefix { $0 != " " && $0 != "\t" }
            guard print.count == 16, print.allSatisfy({ $0.isHexDigit }) else {
                throw ConfigFileError(file: file, line: i + 1, "expected a fingerprint of 16 hex digits at the start of the line, found '\(print.prefix(40))'")
            }
            prints.insert(print.lowercased())
        }
        guard sawHeader else {
            throw ConfigFileError(file: file, line: 1, "empty baseline: expected '\(header)' first (write one with --write-baseline FILE)")
        }
        return Baseline(fingerprints: prints)
    }

    /// The baseline text for findings: one line per distinct fingerprint of a part (each
    /// missing write-back; see `Fingerprint.parts`), sorted by note, each with the first
    /// trace that has it.
    public static func render(_ entries: [(fingerprint: Fingerprint, trace: String)]) -> String {
        var first: [String: (Fingerprint, String)] = [:]
        for e in entries {
            for p in e.fingerprint.partPrints where first[p.hash] == nil { first[p.hash] = (p, e.trace) }
        }
        var out = header + "\n"
        out += "# Known powercut findings. `powercut check --baseline FILE` (or `sweep`) fails only on\n"
        out += "# others; regenerate with `--write-baseline FILE`. One finding a line: its fingerprint,\n"
        out += "# then a note for reviewers (rule, op, bytes at risk and the store, frame, trace).\n"
        for (f, trace) in first.values.sorted(by: { $0.0 < $1.0 }) {
            out += "\(f.hash)  \(oneLine(f.note))  (\(oneLine(trace)))\n"
        }
        return out
    }
}

/// Newlines and other control characters as `?`, so a note stays one line.
func oneLine(_ s: String) -> String {
    String(String.UnicodeScalarView(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
}

/// The lines of a config file (LF or CRLF).
func configLines(_ text: String) -> [Substring] {
    text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
}

extension Substring {
    /// Without leading and trailing spaces, tabs and carriage returns.
    func trimmingBlanks() -> Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isBlank($0) }) else { return self[endIndex...] }
        let end = lastIndex(where: { !isBlank($0) })!
        return self[start...end]
    }
}
