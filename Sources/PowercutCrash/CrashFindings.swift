import PowercutTrace

/// One checked cut, as reported.
public struct CutSummary: Sendable {
    public var cut: UInt64
    /// The event just before the cut (#cut-1) and the one just after it, when known.
    public var before: Event?
    public var after: Event?
    public var count: ImageCount
    public var enumeration: Enumeration
    /// Images the enumeration yields at this cut, and how many of them were images of
    /// the previous checked cut (checked there, not again).
    public var planned: UInt64
    public var repeated: UInt64
    public var everyImage: Bool
    public var truncated: Bool

    init(_ images: CutImages) {
        cut = images.cut
        before = images.before
        after = images.after
        count = images.count
        enumeration = images.enumeration
        planned = images.planned
        repeated = 0
        everyImage = images.everyImage
        truncated = images.truncated
    }

    /// `cut 12 (after #11 store, before #12 sfence)`.
    public var label: String {
        var parts: [String] = []
        if let b = before { parts.append("after #\(b.seq) \(Self.name(b))") }
        if let a = after { parts.append("before #\(a.seq) \(Self.name(a))") }
        if parts.isEmpty { parts.append(cut == 0 ? "before the first event" : "at the end of the trace") }
        return "cut \(cut) (\(parts.joined(separator: ", ")))"
    }

    static func name(_ e: Event) -> String {
        switch e.kind {
        case .opBegin: "op begin"
        case .opEnd: "op end"
        default: e.kind.keyword
        }
    }

    /// `every image`, `depth 2: 100000 of 2^512.0 images`, …
    public var enumerationWording: String {
        switch enumeration {
        case .every: "every image"
        case .depth(let d): "images with at most \(d) line\(d == 1 ? "" : "s") off their newest content\(truncated ? ", cut short at the limit" : "")"
        case .random(let n, let seed): "\(n) random images (seed \(seed))"
        }
    }
}

/// A write named in a report.
public struct WriteRef: Sendable, Equatable {
    public var seq: UInt64
    public var nonTemporal: Bool
    public var address: UInt64
    public var length: Int
    public var thread: UInt32
    public var stack: UInt32

    /// `#5 store 0x1008..0x100f (8 bytes)`.
    public var wording: String {
        let kind = nonTemporal ? "ntstore" : "store"
        let range = length == 1 ? hex(address) : "\(hex(address))..\(hex(address + UInt64(length) - 1))"
        return "#\(seq) \(kind) \(range) (\(length) byte\(length == 1 ? "" : "s"))" + (thread != 0 ? " thread \(thread)" : "")
    }
}

/// A line of an image that differs from the cut's newest image.
public struct LineOutcome: Sendable {
    public var address: UInt64
    public var persisted: [WriteRef]
    public var lost: [WriteRef]
}

/// An image a checker failed, with everything needed to understand and rerun it.
public struct ReportedImage: Sendable {
    public var cut: CutSummary
    /// Its place in the cut's enumeration (0 is the newest image).
    public var index: Int64
    public var verdict: CheckVerdict
    public var output: String
    public var lines: [LineOutcome]
    /// Where the image was saved (a file, or a folder with one file per range).
    public var savedPath: String?

    /// `inconsistent image at cut 12 (…): checker said inconsistent (status 1)`.
    public var headline: String {
        "\(verdict.isFailure ? "inconsistent" : "skipped") image \(index) at \(cut.label): the checker \(verdictWording)"
    }

    var verdictWording: String {
        switch verdict {
        case .inconsistent(let s): "returned \(s)"
        case .crashed: verdict.wording
        case .timedOut: verdict.wording
        default: verdict.wording
        }
    }
}

/// What a whole run found.
public struct CrashOutcome: Sendable {
    public var trace: String
    public var ranges: [ImageRange]
    public var cuts: [CutSummary]
    public var reported: [ReportedImage]
    public var inconsistent: Int64 = 0
    public var crashed: Int64 = 0
    public var timedOut: Int64 = 0
    public var skipped: Int64 = 0
    /// Images given to the checker.
    public var checked: Int64 = 0
    /// Images not checked again because the previous cut had them.
    public var repeated: Int64 { cuts.reduce(0) { $0 + Int64($1.repeated) } }
    public var savedDirectory: String?

    public var failures: Int64 { inconsistent + crashed + timedOut }

    /// Distinct images summed over the checked cuts.
    public var total: ImageCount { cuts.reduce(ImageCount.exact(0)) { $0 + $1.count } }

    /// Every image of every checked cut went to the checker (here or at an earlier cut).
    public var everyImage: Bool { cuts.allSatisfy { $0.everyImage } }

    /// The one-line summary.
    public var summary: String {
        var s = "\(failures) inconsistent image\(failures == 1 ? "" : "s")"
        var kinds: [String] = []
        if crashed > 0 { kinds.append("\(crashed) crashed") }
        if timedOut > 0 { kinds.append("\(timedOut) timed out") }
        if !kinds.isEmpty { s += " (\(kinds.joined(separator: ", ")))" }
        s += "; checked \(checked) of \(total)\(total.isRounded ? " (rounded)" : "") images at \(cuts.count) cut\(cuts.count == 1 ? "" : "s")"
        if repeated > 0 { s += " (\(repeated) already checked at the cut before)" }
        if everyImage {
            s += ": every image"
        } else {
            let partial = cuts.filter { !$0.everyImage }.count
            s += ": not every image (\(partial) cut\(partial == 1 ? "" : "s") above the limit)"
        }
        if skipped > 0 { s += "; \(skipped) skipped by the checker (status 125)" }
        return s
    }
}
