import PowercutTrace

/// A line's whole content, placed in the image (tracked pieces only).
public struct LineImage: Sendable {
    public var address: UInt64
    public var runs: [TrackedRun]
    public var content: [UInt8]
}

/// Where a factor's bytes go: `length` content bytes from `contentStart` land at
/// `rangeOffset` in range `range`.
public struct FactorPiece: Sendable {
    public var range: Int
    public var rangeOffset: UInt64
    public var contentStart: Int
    public var length: Int
}

/// Which at-risk writes of a line one content keeps: the cached writes up to
/// `prefix` (when the factor holds the line's at-risk cached writes) and the chosen
/// non-temporal writes.
public struct FactorChoice: Sendable, Equatable {
    public var prefix: Int?
    public var nonTemporal: [UInt64]
}

/// An independent part of a line: bytes that only its own choices decide (the line's
/// at-risk cached writes as one choice of prefix, each at-risk non-temporal write as
/// a choice of in or out, joined where their bytes overlap). Lines hold disjoint bytes
/// and factors disjoint bytes within a line, so the distinct images are the product of
/// the factors' distinct contents. Only factors with two or more contents are kept:
/// they are the digits an image chooses.
public struct Factor: Sendable {
    /// Index into `CutImages.lines`.
    public var line: Int
    /// Offsets in the line, ascending.
    public var offsets: [Int]
    public var pieces: [FactorPiece]
    public var count: Int
    /// `count` contents of `offsets.count` bytes; content 0 is the newest (every write persisted).
    public var contents: [UInt8]
    /// Additive hash of each content over its offsets.
    public var hashes: [UInt64]
    public var choices: [FactorChoice]

    public func content(_ v: Int) -> ArraySlice<UInt8> {
        contents[v * offsets.count..<(v + 1) * offsets.count]
    }
}

/// A line with at-risk writes at a cut.
public struct VariableLine: Sendable {
    public var address: UInt64
    public var runs: [TrackedRun]
    public var newest: [UInt8]
    /// The line's writes not folded into its base, in program order.
    public var writes: [Write]
    /// g and m.
    public var guaranteed: Int
    public var cachedTotal: Int
    /// Its digits: indices into `CutImages.digits`.
    public var digits: Range<Int>
    /// Product of its digits' counts (saturating).
    public var count: UInt64
    public var newestHash: UInt64
    /// Written since the previous checked cut.
    public var touchedSincePrevious: Bool
    /// The previous checked cut's contents of this line (nil: not known, too many).
    public var previousContents: Set<UInt64>?
    public var previousNewest: UInt64
}

/// How a cut's images are gone through.
public enum Enumeration: Sendable, Equatable {
    /// Every distinct image.
    case every
    /// Images in which at most `depth` lines hold anything but their newest content, in
    /// order of that number, then of the lines (by address), then of their contents.
    case depth(Int)
    /// `n` distinct images drawn at random, deterministically from the seed.
    case random(Int, seed: UInt64)
}

/// What the tool knows at the previous checked cut, to skip images already checked.
public struct PreviousCut: Sendable {
    public var cut: UInt64
    /// Every image of that cut was checked (or, for a depth enumeration not cut short, every image within that depth).
    public var complete: Bool
    public var depth: Int?
}

/// The images at one cut: the lines whose content may vary and their factors, the
/// exact count, and how they will be gone through. Built by `ImageTracker`.
public final class CutImages: @unchecked Sendable {
    public let cut: UInt64
    /// The event just before the cut (#cut-1), and the one just after it.
    public let before: Event?
    public let after: Event?
    /// Lines whose content changed since the previous checked cut, or that varied at
    /// it, with their newest content: an image of the previous cut becomes the newest
    /// image of this one by writing these.
    public let resets: [LineImage]
    public let lines: [VariableLine]
    public let digits: [Factor]
    public let count: ImageCount
    public let enumeration: Enumeration
    /// How many images the enumeration yields (before skipping those already checked).
    public let planned: UInt64
    /// The enumeration yields every image of the cut.
    public let everyImage: Bool
    /// The depth enumeration stopped at the limit.
    public let truncated: Bool
    public let previous: PreviousCut?
    /// Lines written since the previous checked cut that hold one content now: that
    /// content was possible there (else no image of this cut was checked before), and
    /// how many of them differ from their newest content there.
    public let constantsWerePossible: Bool
    public let constantDeviations: Int
    public let lineSize: Int
    /// The ranges tracked at this cut (indices into the layout's ranges, by address):
    /// the image is made of these.
    public internal(set) var ranges: [Int] = []

    init(cut: UInt64, before: Event?, after: Event?, resets: [LineImage], lines: [VariableLine], digits: [Factor],
         plan: ImagePlan, previous: PreviousCut?, constantsWerePossible: Bool, constantDeviations: Int, lineSize: Int) {
        self.cut = cut
        self.before = before
        self.after = after
        self.resets = resets
        self.lines = lines
        self.digits = digits
        self.previous = previous
        self.constantsWerePossible = constantsWerePossible
        self.constantDeviations = constantDeviations
        self.lineSize = lineSize
        var c = ImageCount.one
        for d in digits { c = c * .exact(UInt64(d.count)) }
        count = c
        if c.isAtMost(plan.maxImages) || (plan.random.map { c.isAtMost(UInt64($0.count)) } ?? false) {
            enumeration = .every
            planned = c.exactValue!
            everyImage = true
            truncated = false
        } else if let r = plan.random {
            enumeration = .random(r.count, seed: r.seed)
            planned = UInt64(r.count)
            everyImage = false
            truncated = false
        } else {
            enumeration = .depth(plan.depth)
            let within = Self.depthCount(lines.map { $0.count }, depth: plan.depth)
            planned = min(within, plan.maxImages)
            everyImage = false
            truncated = within > plan.maxImages
        }
    }

    /// Images with at most `depth` lines off their newest content: the elementary
    /// symmetric sums of (count - 1) up to `depth`, saturating.
    static func depthCount(_ counts: [UInt64], depth: Int) -> UInt64 {
        var e = [UInt64](repeating: 0, count: depth + 1)
        e[0] = 1
        for c in counts {
            let x = c &- 1
            var d = depth
            while d >= 1 {
                let (p, o1) = e[d - 1].multipliedReportingOverflow(by: x)
                let (s, o2) = e[d].addingReportingOverflow(p)
                e[d] = o1 || o2 ? UInt64.max : s
                d -= 1
            }
        }
        return e.reduce(0) { a, b in
            let (s, o) = a.addingReportingOverflow(b)
            return o ? UInt64.max : s
        }
    }

    /// The previous cut's images were all checked, so covered images can be skipped.
    public var completeForNext: Bool {
        switch enumeration {
        case .every: true
        case .depth: !truncated
        case .random: false
        }
    }
}

/// Limits on how a cut's images are gone through.
public struct ImagePlan: Sendable, Equatable {
    public var maxImages: UInt64 = 100_000
    public var depth = 2
    public var random: (count: Int, seed: UInt64)?

    public init(maxImages: UInt64 = 100_000, depth: Int = 2, random: (count: Int, seed: UInt64)? = nil) {
        self.maxImages = maxImages
        self.depth = depth
        self.random = random
    }

    public static func == (a: ImagePlan, b: ImagePlan) -> Bool {
        a.maxImages == b.maxImages && a.depth == b.depth && a.random?.count == b.random?.count && a.random?.seed == b.random?.seed
    }
}

/// The additive hash of one byte at one offset: a content's hash is the sum over its
/// bytes, so a line's hash is its newest hash plus each digit's change.
@inline(__always) func byteHash(_ offset: Int, _ value: UInt8) -> UInt64 {
    var z = (UInt64(offset) << 8 | UInt64(value)) &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

func contentHash(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0
    for (i, b) in bytes.enumerated() { h &+= byteHash(i, b) }
    return h
}
