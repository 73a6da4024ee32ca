/// A list of slot numbers in memory of its own: appending checks only its room, with
/// none of an Array's copy-on-write checks (the fence lists take one append per line).
/// Not a value: a copy shares the storage, so the model keeps exactly two (`pending`
/// and `visiting`), swaps them and frees them in its deinit.
struct SlotList {
    private(set) var base: UnsafeMutablePointer<Int32>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 64) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    func deallocate() { base.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// The slots, in the order they were appended.
    var slots: UnsafeBufferPointer<Int32> { UnsafeBufferPointer(start: base, count: count) }

    @inline(__always)
    mutating func append(_ s: Int32) {
        if count == capacity { grow() }
        base[count] = s
        count &+= 1
    }

    mutating func removeAll() { count = 0 }

    /// Removes the first `s`, keeping the others in order.
    mutating func remove(_ s: Int32) {
        guard let i = slots.firstIndex(of: s) else { return }
        (base + i).update(from: base + i + 1, count: count - i - 1)
        count -= 1
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<Int32>.allocate(capacity: capacity * 2)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }
}
