/// Goes through the images of one cut in the order its enumeration defines, one digit
/// change at a time: after each `next()`, `values` holds every digit's content index
/// and `changed` the digits that differ from the image before, so a consumer writes
/// only what changed. `covered` says the image was already an image of the previous
/// checked cut, whose images were all checked (so it need not be checked again).
public struct ImageCursor {
    public let images: CutImages
    public private(set) var values: [Int]
    public private(set) var changed: [Int] = []
    /// 0-based place of the current image in the enumeration; -1 before the first.
    public private(set) var index: Int64 = -1
    public private(set) var covered = false

    // depth enumeration
    private var depth = 0
    private var combo: [Int] = []
    private var lineValues: [UInt64] = []
    // random
    private var rng: UInt64 = 0
    private var drawn = Set<UInt64>()
    // coverage
    private let tracksCoverage: Bool
    private var lineHash: [UInt64]
    private var lineNonzero: [Int]
    private var lineInvalid: [Bool]
    private var lineDeviates: [Bool]
    private var invalid = 0
    private var deviations = 0

    public init(_ images: CutImages) {
        self.images = images
        values = [Int](repeating: 0, count: images.digits.count)
        let n = images.lines.count
        lineHash = images.lines.map { $0.newestHash }
        lineNonzero = [Int](repeating: 0, count: n)
        lineInvalid = [Bool](repeating: false, count: n)
        lineDeviates = [Bool](repeating: false, count: n)
        if let p = images.previous, p.complete, images.constantsWerePossible {
            tracksCoverage = true
        } else {
            tracksCoverage = false
        }
        if case .random(_, let seed) = images.enumeration {
            rng = seed ^ (images.cut &* 0x9E37_79B9_7F4A_7C15)
        }
        if tracksCoverage {
            for i in 0..<n { refresh(line: i) }
        }
    }

    /// Moves to the next image; false when there is none.
    public mutating func next() -> Bool {
        changed.removeAll(keepingCapacity: true)
        if UInt64(index + 1) >= images.planned { return false }
        let ok: Bool
        if index < 0 {
            switch images.enumeration {
            case .random: ok = drawRandom()
            default: ok = true  // the newest image first
            }
        } else {
            switch images.enumeration {
            case .every: ok = stepOdometer()
            case .depth(let d): ok = stepDepth(d)
            case .random: ok = drawRandom()
            }
        }
        guard ok else { return false }
        index += 1
        if tracksCoverage {
            var seenLines: [Int] = []
            for d in changed {
                let l = images.digits[d].line
                if !seenLines.contains(l) { seenLines.append(l); refresh(line: l) }
            }
            let p = images.previous!
            covered = invalid == 0 && (p.depth.map { deviations + images.constantDeviations <= $0 } ?? true)
        }
        return true
    }

    private mutating func set(_ d: Int, _ v: Int) {
        if values[d] == v { return }
        let l = images.digits[d].line
        if values[d] == 0 { lineNonzero[l] += 1 } else if v == 0 { lineNonzero[l] -= 1 }
        values[d] = v
        changed.append(d)
    }

    private mutating func refresh(line l: Int) {
        let line = images.lines[l]
        var dev: Bool
        var bad = false
        if line.touchedSincePrevious {
            var h = line.newestHash
            for d in line.digits { h = h &+ images.digits[d].hashes[values[d]] &- images.digits[d].hashes[0] }
            lineHash[l] = h
            bad = !(line.previousContents?.contains(h) ?? false)
            dev = h != line.previousNewest
        } else {
            dev = lineNonzero[l] > 0
        }
        if bad != lineInvalid[l] { invalid += bad ? 1 : -1; lineInvalid[l] = bad }
        if dev != lineDeviates[l] { deviations += dev ? 1 : -1; lineDeviates[l] = dev }
    }

    private mutating func stepOdometer() -> Bool {
        var d = 0
        while d < values.count {
            if values[d] + 1 < images.digits[d].count {
                set(d, values[d] + 1)
                return true
            }
            set(d, 0)
            d += 1
        }
        return false
    }

    // MARK: depth

    /// Sets line `l` to its `v`-th content (mixed radix over its digits, first digit fastest).
    private mutating func setLine(_ l: Int, _ v: UInt64) {
        var v = v
        for d in images.lines[l].digits {
            let c = UInt64(images.digits[d].count)
            set(d, Int(v % c))
            v /= c
        }
    }

    private mutating func stepDepth(_ maxDepth: Int) -> Bool {
        // Next contents for the lines of the current combination.
        var i = 0
        while i < combo.count {
            let l = combo[i]
            if lineValues[i] + 1 < images.lines[l].count {
                lineValues[i] += 1
                setLine(l, lineValues[i])
                return true
            }
            lineValues[i] = 1
            setLine(l, 1)
            i += 1
        }
        // Next combination of lines of the same size, else one line more.
        for l in combo { setLine(l, 0) }
        let n = images.lines.count
        if !nextCombination(&combo, n) {
            depth += 1
            guard depth <= maxDepth, depth <= n else { return false }
            combo = Array(0..<depth)
        }
        lineValues = [UInt64](repeating: 1, count: combo.count)
        for l in combo { setLine(l, 1) }
        return true
    }

    private func nextCombination(_ c: inout [Int], _ n: Int) -> Bool {
        let k = c.count
        guard k > 0 else { return false }
        var i = k - 1
        while i >= 0 && c[i] == n - k + i { i -= 1 }
        guard i >= 0 else { return false }
        c[i] += 1
        for j in i + 1..<k { c[j] = c[j - 1] + 1 }
        return true
    }

    // MARK: random

    private mutating func random() -> UInt64 {
        rng &+= 0x9E37_79B9_7F4A_7C15
        var z = rng
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func drawRandom() -> Bool {
        for _ in 0..<1000 {
            var key: UInt64 = 0
            var picks: [Int] = []
            picks.reserveCapacity(values.count)
            for d in images.digits.indices {
                let v = Int(random() % UInt64(images.digits[d].count))
                picks.append(v)
                key = key &+ byteHash(d, UInt8(truncatingIfNeeded: v)) &* (UInt64(v) | 1)
            }
            if drawn.insert(key).inserted {
                for (d, v) in picks.enumerated() { set(d, v) }
                return true
            }
        }
        return false
    }
}
