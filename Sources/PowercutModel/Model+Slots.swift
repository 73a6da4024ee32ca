// The persistence model's live lines: slots, the masks in them, and their release.

import PowercutTrace

extension PersistenceModel {

    @inline(__always)
    func slot(forLine line: UInt64, create: Bool) -> Int32? {
        if line == lastLine { return lastSlot }
        let found = table.probe(line)
        if found.found {
            lastLine = line
            lastSlot = found.slot
            return found.slot
        }
        if deferredCount > 0, let j = deferredRun(covering: line) {
            // The line's state is a deferred run's: write the run into its lines first.
            materialize(j)
            return slot(forLine: line, create: create)
        }
        guard create else { return nil }
        let s: Int32
        if freeCount > 0 {
            freeCount &-= 1
            s = freeSlots[freeCount]
        } else {
            if Int(slotsUsed) == capacity { growSlots(to: capacity * 2) }
            s = slotsUsed
            slotsUsed += 1
        }
        table.insert(line, s, at: found.at)
        lineOf[Int(s)] = line
        livePosition[Int(s)] = Int32(live.count)
        liveSlots[liveCount] = s
        liveCount &+= 1
        if liveCount &+ deferredLines > peakLive { peakLive = liveCount &+ deferredLines }
        lastLine = line
        lastSlot = s
        return s
    }

    /// The live slots of lines firstLine...lastLine, in line order.
    func slots(_ firstLine: UInt64, _ lastLine: UInt64) -> [(UInt64, Int32)] {
        settleDeferred()
        var out: [(UInt64, Int32)] = []
        if live.isEmpty { return out }
        if lastLine - firstLine < UInt64(live.count) {
            var line = firstLine
            while true {
                if let s = table.find(line) { out.append((line, s)) }
                if line == lastLine { break }
                line += 1
            }
        } else {
            for s in live {
                let line = lineOf[Int(s)]
                if line >= firstLine && line <= lastLine { out.append((line, s)) }
            }
            out.sort { $0.0 < $1.0 }
        }
        return out
    }

    /// Drops a slot whose bytes are all durable.
    func release(_ s: Int32) {
        dropFastLine()
        if isPending[Int(s)] { removeFromPending(s) }
        let line = lineOf[Int(s)]
        table.remove(line)
        if lastLine == line { lastLine = .max; lastSlot = -1 }
        let p = Int(livePosition[Int(s)])
        liveCount &-= 1
        let moved = liveSlots[liveCount]
        if moved != s {
            liveSlots[p] = moved
            livePosition[Int(moved)] = Int32(p)
        }
        clearSlot(s)
    }

    /// A released slot's state back to that of an unused one, and the slot free.
    @inline(__always)
    private func clearSlot(_ s: Int32) {
        livePosition[Int(s)] = -1
        let m = masks + Int(s) * Self.maskCount * wordsPerLine
        if wordsPerLine == 1 {
            // Six plain stores (a loop here became a call to memset).
            m[0] = 0; m[1] = 0; m[2] = 0; m[3] = 0; m[4] = 0; m[5] = 0
        } else {
            m.update(repeating: 0, count: Self.maskCount * wordsPerLine)
        }
        if tagHead[Int(s)] >= 0 { freeTags(s) }
        recCount[Int(s)] = 0
        recLimit[Int(s)] = Int32(Self.inlineRecords)
        if recExt[Int(s)] >= 0 {
            overflow[Int(recExt[Int(s)])].removeAll()
            freeOverflow.append(recExt[Int(s)])
            recExt[Int(s)] = -1
        }
        freeSlots[freeCount] = s
        freeCount &+= 1
    }

    /// Drops every live slot at once (a fence that left no byte at risk): what `release`
    /// does for each, without keeping the live list and the table's probe runs in order
    /// while they empty.
    func releaseAll() {
        dropFastLine()
        lastLine = .max
        lastSlot = -1
        for i in 0..<liveCount {
            let s = liveSlots[i]
            table.vacate(lineOf[Int(s)])
            if isPending[Int(s)] { removeFromPending(s) }
            clearSlot(s)
        }
        liveCount = 0
    }

    @inline(__always)
    func maskPointer(_ s: Int32, _ which: Int) -> UnsafeMutablePointer<UInt64> {
        masks + (Int(s) * Self.maskCount + which) * wordsPerLine
    }

    func isAllDurable(_ s: Int32) -> Bool {
        let m = masks + Int(s) * Self.maskCount * wordsPerLine
        for w in 0..<(4 * wordsPerLine) where m[w] != 0 { return false }
        return true
    }

    func hasPendingBytes(_ s: Int32) -> Bool {
        for w in 0..<wordsPerLine {
            if maskPointer(s, Self.flushingMask)[w] | maskPointer(s, Self.wcMask)[w] | maskPointer(s, Self.queuedMask)[w] != 0 {
                return true
            }
        }
        return false
    }

    func hasQueuedBytes(_ s: Int32) -> Bool {
        for w in 0..<wordsPerLine where maskPointer(s, Self.queuedMask)[w] != 0 { return true }
        return false
    }

    @inline(__always)
    func markPending(_ s: Int32) {
        if !isPending[Int(s)] {
            isPending[Int(s)] = true
            pending.append(s)
        }
    }

    func removeFromPending(_ s: Int32) {
        pending.remove(s)
        isPending[Int(s)] = false
    }

    @inline(__always)
    static func bits(_ lo: Int, _ hi: Int) -> UInt64 {
        // Bits lo..<hi of a word, 0 <= lo < hi <= 64.
        (UInt64.max &>> UInt64(truncatingIfNeeded: 64 &- (hi &- lo))) &<< UInt64(truncatingIfNeeded: lo)
    }

    /// Calls `body` with each word of bytes lo..<hi of a line and the mask of those bytes in it.
    @inline(__always)
    func forEachWord(_ lo: Int, _ hi: Int, _ body: (Int, UInt64) -> Void) {
        var w = lo >> 6
        let lastWord = (hi - 1) >> 6
        while w <= lastWord {
            body(w, Self.bits(max(lo, w << 6) - (w << 6), min(hi, (w << 6) + 64) - (w << 6)))
            w += 1
        }
    }

    @inline(__always)
    func pop(_ x: UInt64) -> UInt64 { counting ? UInt64(x.nonzeroBitCount) : 0 }
}
