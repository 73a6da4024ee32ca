import PowercutModel
import PowercutSymbolize
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

extension Finding {
    /// The stack that says where the finding comes from: that of the store that left
    /// the first byte range, or the deciding event's own for findings without ranges
    /// (flush notes, missing-drain). 0 when there is none.
    public var originStack: UInt32 { ranges.first.map(\.stack) ?? stack }

    /// The event to point at in the trace: the store that left the first byte range,
    /// else the deciding event (nil at the end of the trace).
    public var originEvent: UInt64? { ranges.first?.event ?? event }
}

/// Line numbers of events in a text trace, so annotations can point into the trace
/// when no source line is known.
public enum TraceLines {
    /// Records that are not numbered events.
    private static let nonEvents: Set<String> = ["powercut-trace", "line-size", "domain", "pmem", "module", "meta", "stack"]

    /// The 1-based line of each wanted event number (`#N`) in a text trace's bytes.
    public static func lines(of wanted: Set<UInt64>, in bytes: some Sequence<UInt8>) -> [UInt64: Int] {
        var scanner = Scanner(wanted: wanted)
        for b in bytes where !scanner.feed(b) { break }
        scanner.finishLine()
        return scanner.found
    }

    /// The same for a trace file; empty when the file cannot be read (the lines are a
    /// convenience, never a reason to fail).
    public static func lines(of wanted: Set<UInt64>, inFile path: String) -> [UInt64: Int] {
        guard !wanted.isEmpty else { return [:] }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [:] }
        defer { close(fd) }
        var scanner = Scanner(wanted: wanted)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        reading: while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for i in 0..<n where !scanner.feed(buffer[i]) { break reading }
        }
        scanner.finishLine()
        return scanner.found
    }

    /// A byte-at-a-time classifier of lines by their first token.
    private struct Scanner {
        let wanted: Set<UInt64>
        var found: [UInt64: Int] = [:]
        var line = 1
        var seq: UInt64 = 0
        var token: [UInt8] = []
        /// 0: leading blanks, 1: in the first token, 2: the rest of the line.
        var phase = 0

        init(wanted: Set<UInt64>) { self.wanted = wanted }

        /// false once every wanted event has been found.
        mutating func feed(_ b: UInt8) -> Bool {
            if b == 0x0A {
                finishLine()
                line += 1
                return found.count < wanted.count
            }
            let blank = b == 0x20 || b == 0x09 || b == 0x0D
            switch phase {
            case 0:
                if b == 0x23 { phase = 2 } else if !blank { token.append(b); phase = 1 }
            case 1:
                if blank || b == 0x23 { phase = 2 } else if token.count < 32 { token.append(b) }
            default:
                break
            }
            return true
        }

        mutating func finishLine() {
            defer { token.removeAll(keepingCapacity: true); phase = 0 }
            guard !token.isEmpty, !TraceLines.nonEvents.contains(String(decoding: token, as: UTF8.self)) else { return }
            if wanted.contains(seq) { found[seq] = line }
            seq += 1
        }
    }
}
