import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// A finding's identity across recordings and across cases: the same bug recorded again
/// (another run, another ASLR base, a trace with more events before it) or met again at
/// another size or alignment of the same routine (a sweep's cases) gets the same
/// fingerprint, so a baseline and SARIF's `partialFingerprints` tell a known finding
/// from a new one.
///
/// Built from, and only from (version 2):
/// - the rule;
/// - the op's name and contract (not its ID, which counts calls);
/// - inside an op, each byte range as its position in the destination and its state,
///   with the store that left it (`tail dirty by powercut!pc_nocache_2016`), listed once
///   each, sorted: no offset and no length, which change with the size and alignment of
///   the call; a write-back note names the instruction's kind only;
/// - outside an op, the offset from the start of the pmem range holding the bytes
///   (`log+0x10 4B dirty`), or `?` outside pmem: a structure's field does not move;
/// - the store's frame: the innermost frame of its stack that is not an inlined helper,
///   as `module!function` when a symbolizer names it (no line: lines move with every
///   edit), else `module+0xOFFSET` (basename and module-relative offset), else `?`;
///   `frame` is that of the finding's origin stack (`Finding.originStack`).
///
/// Never raw addresses, event numbers, cut points, byte counts or the trace's file name.
/// The hash is FNV-1a 64 of `key`, in hex.
public struct Fingerprint: Sendable, Hashable, Comparable {
    public static let version = 2

    public var rule: Rule
    /// The op's name ("-" without an op, "(unnamed)" for an op with no name).
    public var op: String
    public var contract: String
    /// The byte ranges (or flushed line) relative to the op's destination.
    public var place: String
    /// The innermost frame, stable across ASLR.
    public var frame: String
    /// The missing write-backs the finding is made of, each on its own: inside an op,
    /// one per distinct (position, state, store) of its ranges (`tail dirty by
    /// powercut!pc_nocache_2016`); otherwise the whole `place`. A finding at one size
    /// may strand the head and the tail, at another only the tail: a baseline holds the
    /// parts (`Baseline.contains`), so both are known once each part was seen.
    public var parts: [String]

    public init(rule: Rule, op: String, contract: String, place: String, frame: String, parts: [String]? = nil) {
        self.rule = rule
        self.op = op
        self.contract = contract
        self.place = place
        self.frame = frame
        self.parts = parts ?? [place]
    }

    public init(_ f: Finding, in trace: CheckedTrace, frames: FrameResolver = FrameResolver()) {
        rule = f.rule
        op = f.op.map { $0.name ?? "(unnamed)" } ?? "-"
        contract = f.op.map { $0.contract.description } ?? "-"
        let anchor = Anchor(f.op, pmem: trace.header.pmem)
        func storeFrame(_ stack: UInt32) -> String {
            Self.stableFrame(trace.frames(stack), modules: trace.header.modules, frames: frames)
        }
        var parts: [String] = []
        if let line = f.line {
            let kind = f.eventKind?.keyword ?? "write-back"
            parts.append(f.op == nil ? "\(kind) line \(anchor.relative(line))" : "\(kind) line")
        }
        var seen: Set<String> = []
        var ranges: [String] = []
        for r in f.ranges {
            let what = f.op == nil
                ? "\(r.position?.rawValue ?? "-") \(anchor.relative(r.start)) \(r.length)B \(r.state.rawValue)"
                : "\(r.position?.rawValue ?? "-") \(r.state.rawValue)"
            let part = r.stack == 0 ? what : "\(what) by \(storeFrame(r.stack))"
            if seen.insert(part).inserted { ranges.append(part) }
        }
        parts += f.op == nil ? ranges : ranges.sorted()
        place = parts.isEmpty ? "-" : parts.joined(separator: ", ")
        frame = f.originStack == 0 ? "-" : storeFrame(f.originStack)
        self.parts = f.op != nil && f.line == nil && !ranges.isEmpty ? ranges.sorted() : [place]
    }

    /// One fingerprint per part (see `parts`); the finding's own when it has one part.
    public var partPrints: [Fingerprint] {
        parts.count == 1 && parts[0] == place ? [self]
            : parts.map { Fingerprint(rule: rule, op: op, contract: contract, place: $0, frame: frame) }
    }

    /// The stable name of a stack's first frame that is not an inlined helper (the
    /// routine the helper was inlined into), "-" for an empty stack.
    static func stableFrame(_ addresses: [UInt64], modules: [Module], frames: FrameResolver) -> String {
        guard let first = addresses.first else { return "-" }
        let expanded = frames.frames(of: first, index: 0, modules: modules)
        return (expanded.first { !$0.isInlined } ?? expanded.first)?.stableName ?? "?"
    }

    /// The canonical text that is hashed (the frame is in each range's part already;
    /// it counts on its own only for findings without ranges).
    public var key: String {
        "powercut-fingerprint \(Self.version)|\(rule.rawValue)|\(op)|\(contract)|\(place)"
            + (place.contains(" by ") ? "" : "|\(frame)")
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
