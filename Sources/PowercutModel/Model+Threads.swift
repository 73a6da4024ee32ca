// Per-thread ordering in the persistence model: the tags a line carries once a second thread runs.

import PowercutTrace

extension PersistenceModel {

    /// The thread of the events that follow.
    func setThread(_ t: UInt32) {
        dropFastLine()
        thread = t
        guard !multi, t != soleThread else { return }
        settleDeferred()
        if live.isEmpty { soleThread = t } else { enterMulti() }
    }

    /// A second thread appeared: every at-risk byte so far is the sole thread's.
    func enterMulti() {
        multi = true
        fastStores = false
        dropFastLine()
        for s in live {
            let tg = makeTag(s, soleThread)
            var needsFence = false
            for w in 0..<wordsPerLine {
                let flushing = maskPointer(s, Self.flushingMask)[w], wc = maskPointer(s, Self.wcMask)[w]
                let dirty = maskPointer(s, Self.dirtyMask)[w]
                tagMasks[tagOwned(tg) + w] = dirty | wc | flushing
                tagMasks[tagCovered(tg) + w] = flushing
                if flushing | wc != 0 || (domain == .eadr && dirty != 0) { needsFence = true }
            }
            if needsFence { markThreadPending(tg) }
        }
        // The shared list keeps only the lines with queued bytes.
        for s in pending.slots { isPending[Int(s)] = false }
        swap(&pending, &visiting)
        for s in visiting.slots where hasQueuedBytes(s) { markPending(s) }
        visiting.removeAll()
    }

    @inline(__always) func tagOwned(_ t: Int32) -> Int { Int(t) * 2 * wordsPerLine }
    @inline(__always) func tagCovered(_ t: Int32) -> Int { Int(t) * 2 * wordsPerLine + wordsPerLine }

    func tag(_ s: Int32, _ thread: UInt32) -> Int32? {
        var t = tagHead[Int(s)]
        while t >= 0 {
            if tagThread[Int(t)] == thread { return t }
            t = tagNext[Int(t)]
        }
        return nil
    }

    func makeTag(_ s: Int32, _ thread: UInt32) -> Int32 {
        if let t = tag(s, thread) { return t }
        let t: Int32
        if let f = tagFree.popLast() {
            t = f
            tagThread[Int(t)] = thread
            tagSlot[Int(t)] = s
            tagPending[Int(t)] = false
            for w in 0..<(2 * wordsPerLine) { tagMasks[tagOwned(t) + w] = 0 }
        } else {
            t = Int32(tagThread.count)
            tagThread.append(thread)
            tagSlot.append(s)
            tagNext.append(-1)
            tagPending.append(false)
            tagMasks.append(contentsOf: repeatElement(0, count: 2 * wordsPerLine))
        }
        tagNext[Int(t)] = tagHead[Int(s)]
        tagHead[Int(s)] = t
        return t
    }

    func freeTags(_ s: Int32) {
        var t = tagHead[Int(s)]
        while t >= 0 {
            tagPending[Int(t)] = false
            tagSlot[Int(t)] = -1
            tagFree.append(t)
            t = tagNext[Int(t)]
        }
        tagHead[Int(s)] = -1
    }

    func markThreadPending(_ t: Int32) {
        guard !tagPending[Int(t)] else { return }
        tagPending[Int(t)] = true
        let thread = tagThread[Int(t)]
        pendingBy[thread, default: []].append(tagSlot[Int(t)])
        if let n = pendingBy[thread]?.count, n > 64 && n > 2 * live.count {
            // Drop stale entries (lines released or fenced since) so the list follows
            // what is at risk.
            var seen = Set<Int32>()
            pendingBy[thread] = pendingBy[thread]!.filter { s in
                guard let tg = tag(s, thread), tagPending[Int(tg)] else { return false }
                return seen.insert(s).inserted
            }
        }
    }

    /// A store by `thread` to bytes lo..<hi of slot s (masks already updated): the
    /// bytes' newest store is the thread's.
    func tagStore(_ s: Int32, _ lo: Int, _ hi: Int, nonTemporal: Bool) {
        let mine = makeTag(s, thread)
        forEachWord(lo, hi) { w, m in
            var t = tagHead[Int(s)]
            while t >= 0 {
                tagMasks[tagOwned(t) + w] &= ~m
                tagMasks[tagCovered(t) + w] &= ~m
                t = tagNext[Int(t)]
            }
            tagMasks[tagOwned(mine) + w] |= m
        }
        if nonTemporal || domain == .eadr { markThreadPending(mine) }
    }

    /// A write-back by `thread`: it covers every flushing byte of the line.
    func tagWriteBack(_ s: Int32) {
        var any = false
        for w in 0..<wordsPerLine where maskPointer(s, Self.flushingMask)[w] != 0 { any = true }
        guard any else { return }
        let mine = makeTag(s, thread)
        for w in 0..<wordsPerLine { tagMasks[tagCovered(mine) + w] |= maskPointer(s, Self.flushingMask)[w] }
        markThreadPending(mine)
    }
}
