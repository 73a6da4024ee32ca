// What the persistence model answers about the bytes at risk now.

import PowercutTrace

extension PersistenceModel {

    /// Whether [first, last] holds any byte in the given states; no allocation, so the
    /// contracts of clean ops cost little.
    func hasRisk(_ first: UInt64, _ last: UInt64, states: StateSet) -> Bool {
        // A deferred run's bytes are all wc.
        if deferredCount > 0 && states.contains(.wc) && deferredOverlaps(first >> lineShift, last >> lineShift) {
            return true
        }
        if liveCount == 0 { return false }
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        let lineMask = UInt64(lineSize - 1)
        let words = wordsPerLine
        // All ones for the masks of the states asked about, zero for the others.
        let dirty: UInt64 = states.contains(.dirty) ? .max : 0, flushing: UInt64 = states.contains(.flushing) ? .max : 0
        let wc: UInt64 = states.contains(.wc) ? .max : 0, queued: UInt64 = states.contains(.queued) ? .max : 0
        @inline(__always) func check(_ line: UInt64, _ s: Int32) -> Bool {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) &+ 1 : lineSize
            let base = masks + Int(s) &* Self.maskCount &* words
            var w = lo >> 6
            let lastWord = (hi &- 1) >> 6
            while w <= lastWord {
                let m = base[Self.dirtyMask &* words &+ w] & dirty | base[Self.flushingMask &* words &+ w] & flushing
                    | base[Self.wcMask &* words &+ w] & wc | base[Self.queuedMask &* words &+ w] & queued
                if m != 0 && m & Self.bits(max(lo, w << 6) &- (w << 6), min(hi, (w << 6) &+ 64) &- (w << 6)) != 0 {
                    return true
                }
                w &+= 1
            }
            return false
        }
        // A table lookup costs a few times a look at a live slot; lines of deferred runs
        // need neither.
        if lastLineNumber - firstLine - deferredLines(firstLine, lastLineNumber) < UInt64(liveCount / 4) {
            var line = firstLine
            while true {
                if deferredCount > 0, let j = deferredRun(covering: line) {
                    // Its lines hold wc bytes only, and wc was not asked about (see above).
                    line = deferred[j].endLine
                    if line > lastLineNumber { return false }
                    continue
                }
                if let s = table.find(line), check(line, s) { return true }
                if line == lastLineNumber { return false }
                line += 1
            }
        }
        for s in live {
            let line = lineOf[Int(s)]
            if line >= firstLine && line <= lastLineNumber && check(line, s) { return true }
        }
        return false
    }

    /// The at-risk bytes of [first, last] in the given states, as maximal runs of the
    /// same state, store, stack and via, in address order.
    func risks(_ first: UInt64, _ last: UInt64, states: StateSet = .atRisk) -> [RiskRun] {
        var runs: [RiskRun] = []
        if !hasRisk(first, last, states: states) { return runs }
        settleDeferred()
        let firstLine = first >> lineShift, lastLineNumber = last >> lineShift
        var slots: [(UInt64, Int32)] = []
        if lastLineNumber - firstLine < UInt64(live.count) {
            var line = firstLine
            while true {
                if let s = table.find(line) { slots.append((line, s)) }
                if line == lastLineNumber { break }
                line += 1
            }
        } else {
            for s in live {
                let line = lineOf[Int(s)]
                if line >= firstLine && line <= lastLineNumber { slots.append((line, s)) }
            }
            slots.sort { $0.0 < $1.0 }
        }
        let lineMask = UInt64(lineSize - 1)
        for (line, s) in slots {
            let lo = line == firstLine ? Int(first & lineMask) : 0
            let hi = line == lastLineNumber ? Int(last & lineMask) + 1 : lineSize
            for i in lo..<hi {
                let w = i >> 6, bit = UInt64(1) << UInt64(i & 63)
                let state: ByteState
                if maskPointer(s, Self.dirtyMask)[w] & bit != 0 {
                    guard states.contains(.dirty) else { continue }
                    state = .dirty
                } else if maskPointer(s, Self.flushingMask)[w] & bit != 0 {
                    guard states.contains(.flushing) else { continue }
                    state = .flushing
                } else if maskPointer(s, Self.wcMask)[w] & bit != 0 {
                    guard states.contains(.wc) else { continue }
                    state = .wc
                } else if maskPointer(s, Self.queuedMask)[w] & bit != 0 {
                    guard states.contains(.queued) else { continue }
                    state = .queued
                } else {
                    continue
                }
                let address = (line << lineShift) | UInt64(i)
                let (store, stack) = record(s, storeIndex(s, i))
                let nonTemporal = maskPointer(s, Self.ntMask)[w] & bit != 0
                let via: UInt64? = state == .flushing || state == .queued ? record(s, viaIndex(s, i)).seq : nil
                if var r = runs.last, r.start &+ r.length == address, r.state == state, r.store == store,
                   r.stack == stack, r.via == via, r.nonTemporal == nonTemporal {
                    r.length += 1
                    runs[runs.count - 1] = r
                } else {
                    runs.append(RiskRun(start: address, length: 1, state: state, store: store, nonTemporal: nonTemporal,
                                        stack: stack, via: via))
                }
            }
        }
        return runs
    }

    /// The state of one byte (durable when untracked or not pmem).
    func state(of address: UInt64) -> ByteState {
        settleDeferred()
        guard let s = table.find(address >> lineShift) else { return .durable }
        let i = Int(address & UInt64(lineSize - 1))
        let w = i >> 6, bit = UInt64(1) << UInt64(i & 63)
        if maskPointer(s, Self.dirtyMask)[w] & bit != 0 { return .dirty }
        if maskPointer(s, Self.flushingMask)[w] & bit != 0 { return .flushing }
        if maskPointer(s, Self.wcMask)[w] & bit != 0 { return .wc }
        if maskPointer(s, Self.queuedMask)[w] & bit != 0 { return .queued }
        return .durable
    }
}
