// The per-line table of events that at-risk bytes name (their newest store, the write-back or fence that moved them).

import PowercutTrace

extension PersistenceModel {

    @inline(__always)
    func setStore(_ s: Int32, _ lo: Int, _ hi: Int, _ r: Int) {
        if wideIndex {
            (storeIdx.assumingMemoryBound(to: UInt16.self) + Int(s) * lineSize + lo).update(repeating: UInt16(r), count: hi - lo)
            return
        }
        Self.fillIndex(storeIdx + (Int(s) &* lineSize &+ lo), UInt8(truncatingIfNeeded: r), count: hi &- lo)
    }

    /// Sets `count` one-byte indices from `p` to `r`, eight at a time: stores are mostly
    /// a few bytes, too short for memset.
    @inline(__always)
    static func fillIndex(_ p: UnsafeMutableRawPointer, _ r: UInt8, count n: Int) {
        let pattern = UInt64(r) &* 0x0101_0101_0101_0101
        if n == 8 {
            p.storeBytes(of: pattern, as: UInt64.self)
            return
        }
        var i = 0
        while i &+ 8 <= n {
            p.storeBytes(of: pattern, toByteOffset: i, as: UInt64.self)
            i &+= 8
        }
        while i < n {
            p.storeBytes(of: r, toByteOffset: i, as: UInt8.self)
            i &+= 1
        }
    }

    /// The bytes of word w set in `bytes` were moved by event record r.
    @inline(__always)
    func setVia(_ s: Int32, _ w: Int, _ bytes: UInt64, _ r: Int) {
        var b = bytes
        let base = Int(s) * lineSize + (w << 6)
        if wideIndex {
            let p = viaIdx.assumingMemoryBound(to: UInt16.self) + base
            while b != 0 {
                p[b.trailingZeroBitCount] = UInt16(r)
                b &= b - 1
            }
        } else {
            let p = viaIdx.assumingMemoryBound(to: UInt8.self) + base
            let low = b.trailingZeroBitCount
            let run = b >> UInt64(low)
            if run & (run &+ 1) == 0 {
                // One stretch of bytes (a write-back of a store's bytes, mostly).
                Self.fillIndex(UnsafeMutableRawPointer(p + low), UInt8(truncatingIfNeeded: r), count: run.nonzeroBitCount)
                return
            }
            while b != 0 {
                p[b.trailingZeroBitCount] = UInt8(r)
                b &= b - 1
            }
        }
    }

    @inline(__always)
    func storeIndex(_ s: Int32, _ i: Int) -> Int {
        wideIndex ? Int(storeIdx.assumingMemoryBound(to: UInt16.self)[Int(s) * lineSize + i])
            : Int(storeIdx.assumingMemoryBound(to: UInt8.self)[Int(s) * lineSize + i])
    }

    @inline(__always)
    func viaIndex(_ s: Int32, _ i: Int) -> Int {
        wideIndex ? Int(viaIdx.assumingMemoryBound(to: UInt16.self)[Int(s) * lineSize + i])
            : Int(viaIdx.assumingMemoryBound(to: UInt8.self)[Int(s) * lineSize + i])
    }

    /// The event number and stack of record r of slot s.
    func record(_ s: Int32, _ r: Int) -> (seq: UInt64, stack: UInt32) {
        if r < Self.inlineRecords {
            let k = Int(s) * Self.inlineRecords + r
            return (recSeq[k], recStack[k])
        }
        let o = overflow[Int(recExt[Int(s)])]
        return (o.seq[r - Self.inlineRecords], o.stack[r - Self.inlineRecords])
    }

    /// Adds an event to the slot's table and returns its index.
    @inline(__always)
    func addRecord(_ s: Int32, seq: UInt64, stack: UInt32) -> Int {
        let n = Int(recCount[Int(s)])
        if n < Self.inlineRecords && n < Int(recLimit[Int(s)]) {
            let k = Int(s) &* Self.inlineRecords &+ n
            recSeq[k] = seq
            recStack[k] = stack
            recCount[Int(s)] = Int32(truncatingIfNeeded: n &+ 1)
            return n
        }
        return addRecordSlowly(s, seq: seq, stack: stack)
    }

    func addRecordSlowly(_ s: Int32, seq: UInt64, stack: UInt32) -> Int {
        if recCount[Int(s)] >= recLimit[Int(s)] {
            compactRecords(s)
            // Room for as many again as are live, so compaction stays rare, within what
            // the index width can name.
            let live = Int(recCount[Int(s)])
            recLimit[Int(s)] = Int32(min(max(Self.inlineRecords, 2 * live + 1), wideIndex ? 65536 : 256))
        }
        let n = Int(recCount[Int(s)])
        if n < Self.inlineRecords { return addRecord(s, seq: seq, stack: stack) }
        if recExt[Int(s)] < 0 {
            if let f = freeOverflow.popLast() {
                recExt[Int(s)] = f
            } else {
                recExt[Int(s)] = Int32(overflow.count)
                overflow.append(RecordOverflow())
            }
        }
        let o = overflow[Int(recExt[Int(s)])]
        o.seq.append(seq)
        o.stack.append(stack)
        recCount[Int(s)] = Int32(n + 1)
        return n
    }

    /// Keeps only the records that at-risk bytes still name, renumbered.
    func compactRecords(_ s: Int32) {
        let n = Int(recCount[Int(s)])
        var remap = [Int32](repeating: -1, count: n)
        var kept: [(UInt64, UInt32)] = []
        func keep(_ r: Int) -> Int {
            if remap[r] < 0 {
                remap[r] = Int32(kept.count)
                kept.append(record(s, r))
            }
            return Int(remap[r])
        }
        for w in 0..<wordsPerLine {
            let risky = maskPointer(s, Self.dirtyMask)[w] | maskPointer(s, Self.flushingMask)[w]
                | maskPointer(s, Self.wcMask)[w] | maskPointer(s, Self.queuedMask)[w]
            let moved = maskPointer(s, Self.flushingMask)[w] | maskPointer(s, Self.queuedMask)[w]
            var b = risky
            while b != 0 {
                let i = (w << 6) + b.trailingZeroBitCount
                let r = keep(storeIndex(s, i))
                setStore(s, i, i + 1, r)
                b &= b - 1
            }
            b = moved
            while b != 0 {
                let bit = b & (0 &- b)
                let i = (w << 6) + b.trailingZeroBitCount
                setVia(s, w, bit, keep(viaIndex(s, i)))
                b &= b - 1
            }
        }
        let base = Int(s) * Self.inlineRecords
        for (k, r) in kept.prefix(Self.inlineRecords).enumerated() {
            recSeq[base + k] = r.0
            recStack[base + k] = r.1
        }
        if recExt[Int(s)] >= 0 {
            let o = overflow[Int(recExt[Int(s)])]
            o.removeAll()
            for r in kept.dropFirst(Self.inlineRecords) {
                o.seq.append(r.0)
                o.stack.append(r.1)
            }
        }
        recCount[Int(s)] = Int32(kept.count)
    }
}
