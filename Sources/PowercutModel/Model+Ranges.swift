// The declared pmem ranges of the persistence model: lookups, pieces, and ranges that come and go between events.

import PowercutTrace

extension PersistenceModel {

    /// The index of the declared range that contains `address`.
    @inline(__always)
    func rangeIndex(containing address: UInt64) -> Int? {
        let r = lastRange
        if r < rangeCount && address >= rangeBase[r] && address <= rangeLast[r] { return r }
        let lo = firstRange(after: address)
        guard lo > 0, address <= rangeLast[lo - 1] else { return nil }
        lastRange = lo - 1
        return lo - 1
    }

    /// The index of the first range whose base is above `address`.
    func firstRange(after address: UInt64) -> Int {
        var lo = 0, hi = rangeCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if rangeBase[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The index of the first range that ends at or after `address`.
    func firstRange(endingFrom address: UInt64) -> Int {
        let i = firstRange(after: address)
        return i > 0 && rangeLast[i - 1] >= address ? i - 1 : i
    }

    /// Calls `body` with each piece of [first, last] (inclusive) that lies in a declared
    /// range, in address order, with that range.
    func forEachPmemPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64, PmemRange) -> Void) {
        var i = firstRange(endingFrom: first)
        while i < rangeCount && rangeBase[i] <= last {
            body(max(first, rangeBase[i]), min(last, rangeLast[i]), ranges[i])
            i += 1
        }
    }

    /// Calls `body` with the pieces of [first, last] that no declared range covers.
    func forEachUntrackedPiece(_ first: UInt64, _ last: UInt64, _ body: (UInt64, UInt64) -> Void) {
        var cursor = first
        var i = firstRange(endingFrom: first)
        while i < rangeCount && rangeBase[i] <= last {
            if rangeBase[i] > cursor { body(cursor, rangeBase[i] - 1) }
            if rangeLast[i] >= last { return }
            cursor = rangeLast[i] + 1
            i += 1
        }
        body(cursor, last)
    }

    /// `pmem` between events: a range tracked from here on. The reader has checked that
    /// it overlaps no range tracked now.
    func addRange(_ r: PmemRange) {
        dropFastLine()
        settleDeferred()
        guard r.length > 0 else { return }
        if rangeCount == rangeCapacity {
            let c = rangeCapacity * 2
            func grow<T>(_ p: inout UnsafeMutablePointer<T>) {
                let q = UnsafeMutablePointer<T>.allocate(capacity: c)
                q.moveInitialize(from: p, count: rangeCount)
                p.deallocate()
                p = q
            }
            grow(&rangeBase)
            grow(&rangeLast)
            grow(&rangeVolatile)
            rangeCapacity = c
        }
        let i = firstRange(after: r.base)
        let tail = rangeCount - i
        (rangeBase + i + 1).moveInitialize(from: rangeBase + i, count: tail)
        (rangeLast + i + 1).moveInitialize(from: rangeLast + i, count: tail)
        (rangeVolatile + i + 1).moveInitialize(from: rangeVolatile + i, count: tail)
        rangeBase[i] = r.base
        rangeLast[i] = r.base &+ (r.length - 1)
        rangeVolatile[i] = r.isVolatile
        ranges.insert(r, at: i)
        rangeCount += 1
        lastRange = i
    }

    /// `pmem-release BASE LEN`: the range declared with exactly this base and length
    /// stops being tracked and its bytes' states are dropped. False when no such range.
    @discardableResult
    func removeRange(base: UInt64, length: UInt64) -> Bool {
        dropFastLine()
        settleDeferred()
        let i = firstRange(after: base) - 1
        guard i >= 0, rangeBase[i] == base, ranges[i].length == length else { return false }
        dropStates(base, rangeLast[i])
        hotLo = 1
        hotHi = 0
        let tail = rangeCount - i - 1
        (rangeBase + i).moveInitialize(from: rangeBase + i + 1, count: tail)
        (rangeLast + i).moveInitialize(from: rangeLast + i + 1, count: tail)
        (rangeVolatile + i).moveInitialize(from: rangeVolatile + i + 1, count: tail)
        ranges.remove(at: i)
        rangeCount -= 1
        lastRange = 0
        return true
    }

    /// Forgets the state of every byte of [first, last].
    func dropStates(_ first: UInt64, _ last: UInt64) {
        dropFastLine()
        let lineMask = UInt64(lineSize - 1)
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        for (line, s) in slots(firstLine, lastLineNumber) {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            forEachWord(lo, hi) { w, m in
                for k in 0..<Self.maskCount {
                    let p = maskPointer(s, k)
                    if k <= Self.queuedMask { counters[k] -= pop(p[w] & m) }
                    p[w] &= ~m
                }
                var t = tagHead[Int(s)]
                while t >= 0 {
                    tagMasks[tagOwned(t) + w] &= ~m
                    tagMasks[tagCovered(t) + w] &= ~m
                    t = tagNext[Int(t)]
                }
            }
            if isAllDurable(s) { release(s) }
        }
    }
}
