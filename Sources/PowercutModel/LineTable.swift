/// Maps a cache-line number to the slot that holds its state: open addressing with
/// linear probing and backward-shift deletion, sized to the lines that are live (at
/// risk), not to the pmem declared.
struct LineTable {
    private var keys: UnsafeMutablePointer<UInt64>   // line + 1; 0 = empty
    private var values: UnsafeMutablePointer<Int32>
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var c = 16
        while c < capacity * 2 { c <<= 1 }
        keys = .allocate(capacity: c)
        keys.initialize(repeating: 0, count: c)
        values = .allocate(capacity: c)
        values.initialize(repeating: -1, count: c)
        mask = c - 1
    }

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    @inline(__always)
    func find(_ line: UInt64) -> Int32? {
        let key = line &+ 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key { return values[i] }
            if k == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    /// The slot of `line`, or where it would go: `found` false and the empty place its
    /// probe ended at, for `insert(_:_:at:)` (one probe for a line's lookup and insert).
    @inline(__always)
    func probe(_ line: UInt64) -> (slot: Int32, found: Bool, at: Int) {
        let key = line &+ 1
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key { return (values[i], true, i) }
            if k == 0 { return (-1, false, i) }
            i = (i + 1) & mask
        }
    }

    /// Inserts a line `probe` did not find, at the place it gave (nothing changed since).
    @inline(__always)
    mutating func insert(_ line: UInt64, _ slot: Int32, at place: Int) {
        if (count + 1) * 2 > mask + 1 {
            insert(line, slot)
            return
        }
        keys[place] = line &+ 1
        values[place] = slot
        count += 1
    }

    mutating func insert(_ line: UInt64, _ slot: Int32) {
        if (count + 1) * 2 > mask + 1 { grow() }
        let key = line &+ 1
        var i = home(key)
        while keys[i] != 0 && keys[i] != key { i = (i + 1) & mask }
        if keys[i] == 0 { count += 1 }
        keys[i] = key
        values[i] = slot
    }

    /// Empties the place of `line`, leaving later members of its probe run where they
    /// are: only for removing every line (the table is empty after, so no lookup can
    /// stop early at the hole).
    @inline(__always)
    mutating func vacate(_ line: UInt64) {
        guard let i = place(of: line) else { return }
        keys[i] = 0
        values[i] = -1
        count -= 1
    }

    /// Where `line` is in the table, if it is.
    @inline(__always)
    private func place(of line: UInt64) -> Int? {
        let key = line &+ 1
        var i = home(key)
        while keys[i] != key {
            if keys[i] == 0 { return nil }
            i = (i + 1) & mask
        }
        return i
    }

    mutating func remove(_ line: UInt64) {
        guard let i = place(of: line) else { return }
        count -= 1
        // Shift later members of the probe run back so lookups never stop early.
        var hole = i
        var j = i
        while true {
            j = (j + 1) & mask
            let k = keys[j]
            if k == 0 { break }
            let h = home(k)
            let movable = hole <= j ? (h <= hole || h > j) : (h <= hole && h > j)
            if movable {
                keys[hole] = k
                values[hole] = values[j]
                hole = j
            }
        }
        keys[hole] = 0
        values[hole] = -1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values, oldCapacity = mask + 1
        let c = oldCapacity * 2
        keys = .allocate(capacity: c)
        keys.initialize(repeating: 0, count: c)
        values = .allocate(capacity: c)
        values.initialize(repeating: -1, count: c)
        mask = c - 1
        count = 0
        for i in 0..<oldCapacity where oldKeys[i] != 0 { insert(oldKeys[i] &- 1, oldValues[i]) }
        oldKeys.deallocate()
        oldValues.deallocate()
    }
}
