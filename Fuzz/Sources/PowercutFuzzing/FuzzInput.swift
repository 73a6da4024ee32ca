import PowercutModel
import PowercutTrace

#if canImport(Glibc)
import Glibc
#endif

/// The bytes libFuzzer hands a target, and the choices a target makes from them.
///
/// Choices that are not trace content (replay options, which bytes `explain` follows)
/// come from a hash of the whole input, so a saved input always replays the same way and
/// a reproducer file is all it takes to see a failure again.
public struct FuzzInput {
    public let bytes: [UInt8]

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// FNV-1a over the input.
    public var hash: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// Starts with the binary form's magic.
    public var isBinary: Bool { bytes.starts(with: BinaryFormat.magic) }

    /// Replay options as `check` takes them from its flags: the domain override, the
    /// non-temporal eviction and strict-clflush variants, and the per-cut counts.
    public var replayOptions: ReplayOptions {
        let h = hash
        let domains: [Domain?] = [nil, .adr, .eadr, .wpq]
        var o = ReplayOptions(domain: domains[Int(h & 3)], ntEvicts: h & 4 != 0, strictClflush: h & 8 != 0,
                              recordCuts: h & 16 != 0)
        o.keepOps = h & 32 != 0
        return o
    }
}

/// The checks the targets make beyond "no crash", by the names POWERCUT_FUZZ_LAX takes.
public enum FuzzCheck: String, CaseIterable, Sendable {
    /// A rejection is one short, escaped line.
    case messages
    /// What the binary reader accepts, the text form holds, with the same verdict.
    case binaryText = "binary-text"
    /// A reader gives the same trace whatever the batch size it streams events in.
    case batches
    /// A binary reader that coalesces store runs gives the same stores, and the replay
    /// that takes runs whole the same verdicts as one store at a time.
    case runs
    /// text -> binary -> text gives the canonical text back.
    case roundTrip = "roundtrip"
    /// The JSON, SARIF, JUnit, GitHub and SVG documents are well-formed.
    case documents
    /// The baseline powercut writes reads back.
    case baseline
    /// The suppression blocks powercut generates read back and match their findings.
    case suppressions
}

/// POWERCUT_FUZZ_LAX=messages,binary-text,…: checks not made, to look for other failures
/// while a bug they find is open.
let laxChecks: Set<String> = Set((getenv("POWERCUT_FUZZ_LAX").map { String(cString: $0) } ?? "")
    .split(separator: ",").map(String.init))

public func isLax(_ check: FuzzCheck) -> Bool { laxChecks.contains(check.rawValue) }

/// A check failed: abort (see `fuzzFailure`) unless POWERCUT_FUZZ_LAX names the check.
public func checkFailed(_ check: FuzzCheck, _ message: @autoclosure () -> String) {
    if isLax(check) { return }
    fuzzFailure("[\(check.rawValue)] " + message())
}

/// A failure: the message goes to standard error and the process aborts, which
/// libFuzzer reports as a crash and saves the input that caused it.
public func fuzzFailure(_ message: String) -> Never {
    let text = "powercut-fuzz: FAILED: " + message + "\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    abort()
}

/// A rejection is one line that quotes at most a short, escaped piece of the input
/// (the hostile-input rule): no control byte, and bounded whatever the input's size.
public func checkRejection(_ message: String, what: String, maxBytes: Int = maxMessageBytes) {
    if let bad = message.utf8.first(where: { $0 < 0x20 || $0 == 0x7f }) {
        checkFailed(.messages, "\(what) message holds the control byte 0x\(String(bad, radix: 16)) (expected one line, escaped): \(escapedPrefix(message))")
    }
    if message.utf8.count > maxBytes {
        checkFailed(.messages, "\(what) message is \(message.utf8.count) bytes (expected at most \(maxBytes), quoting ~80 bytes of input): \(escapedPrefix(message))")
    }
}

/// Room for the file name, the location, the wording and ~80 quoted bytes escaped
/// (`\xHH`, four bytes each).
public let maxMessageBytes = 640

/// The start of a text, control bytes escaped, for failure messages.
func escapedPrefix(_ s: String, max: Int = 200) -> String {
    var out = ""
    for u in s.unicodeScalars.prefix(max) {
        if u.value < 0x20 || u.value == 0x7f { out += "\\x" + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
    }
    return s.unicodeScalars.count > max ? out + "…" : out
}

/// A file of this process's own under a memory-backed temporary directory, for the
/// code under test that reads or writes by path.
public func scratchPath(_ name: String) -> String {
    var st = stat()
    let dir = stat("/dev/shm", &st) == 0 ? "/dev/shm" : (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
    return "\(dir)/powercut-fuzz-\(getpid())-\(name)"
}

/// Writes bytes to a path (truncating); false if it cannot.
public func writeScratch(_ bytes: [UInt8], to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}
