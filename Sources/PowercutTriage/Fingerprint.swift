import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// A finding's identity across recordings: the same bug recorded again (another run,
/// another ASLR base, a trace with more events before it) gets the same fingerprint, so
/// a baseline and SARIF's `partialFingerprints` can tell a known finding from a new one.
///
/// Built from, and only from:
/// - the rule;
/// - the op's name and contract (not its ID, which counts calls);
/// - each byte range as position, offset from the op's destination, length and state
///   (`tail dst+0xb 2B dirty`); without an op, the offset from the start of the pmem
///   range holding the bytes (`pool+0x48`), or `?` outside pmem; for flush notes, the
///   write-back's kind and its line's offset;
/// - the innermost frame of the finding's origin stack (`Finding.originStack`) as
///   `module!function` when a symbolizer names it, else `module+0xOFFSET` (basename and
///   module-relative offset), else `?`.
///
/// Never raw addresses, event numbers, cut points or the trace's file name: the same
/// bug in two traces is one fingerprint. The hash is FNV-1a 64 of `key`, in hex.
public struct Fingerprint: Sendable, Hashable, Comparable {
    public static let version = 1

    public var rule: Rule
    /// The op's name ("-" without an op, "(unnamed)" for an op with no name).
    public var op: String
    public var contract: String
    /// The byte ranges (or flushed line) relative to the op's destination.
    public var place: String
    /// The innermost frame, stable across ASLR.
    public var frame: String

    public init(rule: Rule, op: String, contract: String, place: String, frame: String) {
        self.rule = rule
        self.op = op
        self.contract = contract
        self.place = place
        self.frame = frame
    }

    public init(_ f: Finding, in trace: CheckedTrace, frames: FrameResolver = FrameResolver()) {
        rule = f.rule
        op = f.op.map { $0.name ?? "(unnamed)" } ?? "-"
        contract = f.op.map { $0.contract.description } ?? "-"
        let anchor = Anchor(f.op, pmem: trace.header.pmem)
        var parts: [String] = []
        if let line = f.line {
            parts.append("\(f.eventKind?.keyword ?? "write-back") line \(anchor.relative(line))")
        }
        for r in f.ranges {
            parts.append("\(r.position?.rawValue ?? "-") \(anchor.relative(r.start)) \(r.length)B \(r.state.rawValue)")
        }
        if f.omittedRanges > 0 { parts.append("+\(f.omittedRanges) ranges, \(f.bytes)B") }
        place = parts.isEmpty ? "-" : parts.joined(separator: ", ")
        let innermost = trace.frames(f.originStack).first
        frame = innermost.map { frames.frames(of: $0, index: 0, modules: trace.header.modules)[0].stableName } ?? "-"
    }

    /// The canonical text that is hashed.
    public var key: String {
        "powercut-fingerprint \(Self.version)|\(rule.rawValue)|\(op)|\(contract)|\(place)|\(frame)"
    }

    /// 16 lowercase hex digits.
    public var hash: String {
        let h = fnv1a64(key)
        let s = hex(h)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// One line for people: rule, op, where, frame.
    public var note: String {
        "\(rule.rawValue)  \(op)  \(place)  at \(frame)"
    }

    public static func < (a: Fingerprint, b: Fingerprint) -> Bool {
        (a.note, a.hash) < (b.note, b.hash)
    }

    /// What offsets are relative to: the op's destination, else the pmem range.
    private struct Anchor {
        var op: OpInfo?
        var pmem: [PmemRange]

        init(_ op: OpInfo?, pmem: [PmemRange]) {
            self.op = op
            self.pmem = pmem
        }

        func relative(_ address: UInt64) -> String {
            if let op { return "dst" + signedOffset(address, from: op.dst) }
            if let i = pmem.firstIndex(where: { $0.contains(address) }) {
                return (pmem[i].name ?? "pmem\(i)") + signedOffset(address, from: pmem[i].base)
            }
            return "?"
        }
    }
}

/// "+0x1f" or "-0x8".
func signedOffset(_ address: UInt64, from base: UInt64) -> String {
    address >= base ? "+0x\(hex(address - base))" : "-0x\(hex(base - address))"
}

/// FNV-1a, 64 bits, over the UTF-8 bytes.
public func fnv1a64(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01b3
    }
    return h
}
