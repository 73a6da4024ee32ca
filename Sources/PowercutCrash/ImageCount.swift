import Glibc

/// How many distinct images there are: exact up to 10^18, above that a power of two
/// rounded to one decimal.
public enum ImageCount: Sendable, Equatable, CustomStringConvertible {
    case exact(UInt64)
    case rounded(log2: Double)

    public static let exactLimit: UInt64 = 1_000_000_000_000_000_000

    public static let one = ImageCount.exact(1)

    public var log2: Double {
        switch self {
        case .exact(let n): n == 0 ? -.infinity : Glibc.log2(Double(n))
        case .rounded(let l): l
        }
    }

    public var exactValue: UInt64? {
        if case .exact(let n) = self { n } else { nil }
    }

    public var isRounded: Bool { exactValue == nil }

    public static func * (a: ImageCount, b: ImageCount) -> ImageCount {
        if case .exact(let x) = a, case .exact(let y) = b {
            let (p, o) = x.multipliedReportingOverflow(by: y)
            if !o && p <= exactLimit { return .exact(p) }
        }
        return .rounded(log2: a.log2 + b.log2)
    }

    public static func + (a: ImageCount, b: ImageCount) -> ImageCount {
        if case .exact(let x) = a, case .exact(let y) = b {
            let (s, o) = x.addingReportingOverflow(y)
            if !o && s <= exactLimit { return .exact(s) }
        }
        let (hi, lo) = a.log2 >= b.log2 ? (a.log2, b.log2) : (b.log2, a.log2)
        if lo == -.infinity { return .rounded(log2: hi) }
        return .rounded(log2: hi + Glibc.log2(1 + Glibc.exp2(lo - hi)))
    }

    /// At most `n`.
    public func isAtMost(_ n: UInt64) -> Bool {
        if case .exact(let x) = self { return x <= n }
        return false
    }

    /// `1 image`, `6 images`, `2^512.0 (rounded) images`.
    public var images: String {
        switch self {
        case .exact(1): "1 image"
        case .exact(let n): "\(n) images"
        case .rounded: "\(description) (rounded) images"
        }
    }

    /// `12345`, or `2^512.0` (rounded).
    public var description: String {
        switch self {
        case .exact(let n): String(n)
        case .rounded(let l): "2^" + Self.oneDecimal(l)
        }
    }

    static func oneDecimal(_ x: Double) -> String {
        let tenths = (x * 10).rounded()
        let whole = Int(tenths / 10)
        let frac = Int(tenths) - whole * 10
        return "\(whole).\(abs(frac))"
    }
}

