/// The grid a sweep walks: destination offsets × source offsets × sizes.
public struct SweepGrid: Sendable, Equatable {
    public var dstOffsets: [UInt64]
    public var srcOffsets: [UInt64]
    public var sizes: [UInt64]

    public static let defaultDstOffsets = "0-63"
    public static let defaultSrcOffsets = "0"
    public static let defaultSizes = "0-256,511-513,1023-1025,4095-4097"

    public init(dstOffsets: [UInt64], srcOffsets: [UInt64], sizes: [UInt64]) {
        self.dstOffsets = dstOffsets
        self.srcOffsets = srcOffsets
        self.sizes = sizes
    }

    public static let `default` = SweepGrid(
        dstOffsets: try! parseList(defaultDstOffsets), srcOffsets: try! parseList(defaultSrcOffsets),
        sizes: try! parseList(defaultSizes))

    public var count: Int { dstOffsets.count * srcOffsets.count * sizes.count }

    /// Every case, sizes innermost (a worker then walks one alignment at a time).
    public var cases: [SweepCase] {
        var out: [SweepCase] = []
        out.reserveCapacity(count)
        for d in dstOffsets { for s in srcOffsets { for n in sizes { out.append(SweepCase(dstOffset: d, srcOffset: s, size: n)) } } }
        return out
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses "0-63", "1,2,8-16", "0x10-0x20": sorted, without repeats.
    public static func parseList(_ text: String, max: UInt64 = 1 << 24) throws -> [UInt64] {
        var values = Set<UInt64>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let p = part.trimmingCharacters(in: " ")
            let bounds = p.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let lo = number(bounds[0]), let hi = bounds.count == 2 ? number(bounds[1]) : lo, !p.isEmpty else {
                throw ParseError(description: "'\(p)' is not a number or range (expected e.g. 0-63 or 1,2,8-16)")
            }
            guard lo <= hi else { throw ParseError(description: "range '\(p)' runs backwards") }
            guard hi <= max else { throw ParseError(description: "\(hi) is larger than \(max)") }
            guard hi - lo < 1 << 20 else { throw ParseError(description: "range '\(p)' has more than 2^20 values") }
            for v in lo...hi { values.insert(v) }
        }
        return values.sorted()
    }

    private static func number(_ s: String) -> UInt64? {
        if s.hasPrefix("0x") || s.hasPrefix("0X") { return UInt64(s.dropFirst(2), radix: 16) }
        return UInt64(s)
    }

    /// The inverse of `parseList`: "0-256,511-513".
    public static func format(_ values: [UInt64]) -> String {
        var parts: [String] = []
        var i = 0
        while i < values.count {
            var j = i
            while j + 1 < values.count && values[j + 1] == values[j] + 1 { j += 1 }
            parts.append(i == j ? "\(values[i])" : "\(values[i])-\(values[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}

extension Substring {
    func trimmingCharacters(in c: Character) -> String {
        var s = self
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}

/// One cell of the grid.
public struct SweepCase: Sendable, Hashable, Comparable {
    public var dstOffset: UInt64
    public var srcOffset: UInt64
    public var size: UInt64

    public init(dstOffset: UInt64, srcOffset: UInt64, size: UInt64) {
        self.dstOffset = dstOffset
        self.srcOffset = srcOffset
        self.size = size
    }

    public static func < (a: SweepCase, b: SweepCase) -> Bool {
        (a.dstOffset, a.srcOffset, a.size) < (b.dstOffset, b.srcOffset, b.size)
    }

    public var label: String { "dst+\(dstOffset) src+\(srcOffset) n=\(size)" }
}
