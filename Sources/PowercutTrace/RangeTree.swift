/// The tracked pmem ranges, ordered by base: non-overlapping ranges with O(log n)
/// insertion, removal and "which range holds this address" (a treap kept in arrays, so
/// 300 k ranges cost a few megabytes and no reference counting).
struct RangeTree {
    struct Range: Equatable {
        var base: UInt64
        var length: UInt64
        var isVolatile: Bool
        /// The last byte (ranges may end at the top of the address space).
        var last: UInt64 { base &+ (length &- 1) }
    }

    private var ranges: [Range] = []
    private var left: [Int32] = []
    private var right: [Int32] = []
    private var priority: [UInt32] = []
    private var freeSlots: [Int32] = []
    private var root: Int32 = -1
    private var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    private(set) var count = 0

    /// The range with the largest base at or below `address`.
    func floor(_ address: UInt64) -> Range? {
        var n = root
        var best: Int32 = -1
        while n >= 0 {
            if ranges[Int(n)].base <= address {
                best = n
                n = right[Int(n)]
            } else {
                n = left[Int(n)]
            }
        }
        return best >= 0 ? ranges[Int(best)] : nil
    }

    /// The range holding `address`, if any.
    func range(containing address: UInt64) -> Range? {
        guard let r = floor(address), address <= r.last else { return nil }
        return r
    }

    /// A tracked range that shares a byte with `r`, if any. Since tracked ranges do not
    /// overlap, only the one with the largest base at or below r's last byte can.
    func overlap(_ r: Range) -> Range? {
        guard let p = floor(r.last), p.last >= r.base else { return nil }
        return p
    }

    /// Inserts a range that overlaps none tracked (check with `overlap` first).
    mutating func insert(_ r: Range) {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        let node: Int32
        if let slot = freeSlots.popLast() {
            node = slot
            ranges[Int(node)] = r
            left[Int(node)] = -1
            right[Int(node)] = -1
            priority[Int(node)] = UInt32(truncatingIfNeeded: seed >> 33)
        } else {
            node = Int32(ranges.count)
            ranges.append(r)
            left.append(-1)
            right.append(-1)
            priority.append(UInt32(truncatingIfNeeded: seed >> 33))
        }
        let (l, g) = split(root, r.base)
        root = merge(merge(l, node), g)
        count += 1
    }

    /// Removes the range based at `base`; returns it, or nil when none is.
    mutating func remove(base: UInt64) -> Range? {
        // Walk down keeping the link that points at the current node.
        var parent: Int32 = -1
        var wentLeft = false
        var n = root
        while n >= 0 && ranges[Int(n)].base != base {
            parent = n
            wentLeft = base < ranges[Int(n)].base
            n = wentLeft ? left[Int(n)] : right[Int(n)]
        }
        guard n >= 0 else { return nil }
        let removed = ranges[Int(n)]
        let joined = merge(left[Int(n)], right[Int(n)])
        if parent < 0 {
            root = joined
        } else if wentLeft {
            left[Int(parent)] = joined
        } else {
            right[Int(parent)] = joined
        }
        freeSlots.append(n)
        count -= 1
        return removed
    }

    /// Splits a subtree into the nodes with base < key and those with base >= key.
    private mutating func split(_ n: Int32, _ key: UInt64) -> (Int32, Int32) {
        if n < 0 { return (-1, -1) }
        if ranges[Int(n)].base < key {
            let (l, g) = split(right[Int(n)], key)
            right[Int(n)] = l
            return (n, g)
        } else {
            let (l, g) = split(left[Int(n)], key)
            left[Int(n)] = g
            return (l, n)
        }
    }

    /// Joins two subtrees, every base in `a` below every base in `b`.
    private mutating func merge(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if priority[Int(a)] > priority[Int(b)] {
            right[Int(a)] = merge(right[Int(a)], b)
            return a
        } else {
            left[Int(b)] = merge(a, left[Int(b)])
            return b
        }
    }
}
