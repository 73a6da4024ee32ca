/// Splits a line's at-risk writes into independent factors and lists each factor's
/// distinct contents by trying every choice (a prefix of the at-risk cached writes,
/// a subset of the at-risk non-temporal writes whose bytes overlap), newest first.
enum LineFactors {
    /// The most choices one factor may have (2^22): more overlapping at-risk writes
    /// than that in one line is refused rather than enumerated for minutes.
    static let maxChoices = 1 << 22

    static func build(_ line: LineState) throws(CrashError) -> [Factor] {
        let g = line.guaranteed, m = line.cachedTotal
        let lineSize = line.base.count
        // Nodes: 0 = the at-risk cached writes (if any), then one per at-risk NT write.
        var nodeOffsets: [[Int]] = []
        var ntSeqs: [UInt64] = []
        var hasCached = false
        var cachedOffsets = Set<Int>()
        for w in line.writes where !w.nonTemporal && w.cachedIndex > g {
            hasCached = true
            for i in 0..<w.length where line.tracked[w.offset + i] { cachedOffsets.insert(w.offset + i) }
        }
        var cachedNode = -1
        if hasCached && !cachedOffsets.isEmpty {
            cachedNode = 0
            nodeOffsets.append(cachedOffsets.sorted())
        }
        var ntNodeOfWrite: [Int: Int] = [:]  // index in writes -> node
        for (wi, w) in line.writes.enumerated() where w.nonTemporal && !w.ntGuaranteed {
            var offs: [Int] = []
            for i in 0..<w.length where line.tracked[w.offset + i] { offs.append(w.offset + i) }
            if offs.isEmpty { continue }
            ntNodeOfWrite[wi] = nodeOffsets.count
            nodeOffsets.append(offs)
            ntSeqs.append(w.seq)
        }
        if nodeOffsets.isEmpty { return [] }

        // Join nodes that share bytes.
        var parent = Array(0..<nodeOffsets.count)
        func root(_ x: Int) -> Int {
            var x = x
            while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
            return x
        }
        var owner = [Int](repeating: -1, count: lineSize)
        for (n, offs) in nodeOffsets.enumerated() {
            for o in offs {
                if owner[o] < 0 { owner[o] = n } else {
                    let a = root(owner[o]), b = root(n)
                    if a != b { parent[max(a, b)] = min(a, b) }
                }
            }
        }
        var components: [Int: [Int]] = [:]
        for n in nodeOffsets.indices { components[root(n), default: []].append(n) }

        var factors: [Factor] = []
        for (_, nodes) in components.sorted(by: { $0.key < $1.key }) {
            var offsetSet = Set<Int>()
            for n in nodes { offsetSet.formUnion(nodeOffsets[n]) }
            let offsets = offsetSet.sorted()
            var position = [Int](repeating: -1, count: lineSize)
            for (i, o) in offsets.enumerated() { position[o] = i }
            let withCached = nodes.contains(cachedNode)
            let ntNodes = nodes.filter { $0 != cachedNode }
            let k = ntNodes.count
            let prefixes = withCached ? m - g + 1 : 1
            guard k < 40, prefixes.multipliedReportingOverflow(by: 1 << k).overflow == false,
                  prefixes * (1 << k) <= maxChoices else {
                throw CrashError(.badData, "line \(hex(line.address)) has \(k) overlapping at-risk non-temporal writes and \(prefixes - 1) at-risk cached writes: more than \(maxChoices) choices to enumerate for one line")
            }
            // The writes that touch this factor, in program order, with their choice bit.
            struct Relevant { var write: Write; var bit: Int }  // bit -1: cached or guaranteed
            var relevant: [Relevant] = []
            for (wi, w) in line.writes.enumerated() {
                var touches = false
                for i in 0..<w.length where position[w.offset + i] >= 0 { touches = true; break }
                guard touches else { continue }
                var bit = -1
                if let n = ntNodeOfWrite[wi], let b = ntNodes.firstIndex(of: n) { bit = b }
                relevant.append(Relevant(write: w, bit: bit))
            }
            let width = offsets.count
            var seen: [[UInt8]: Int] = [:]
            var contents: [UInt8] = []
            var hashes: [UInt64] = []
            var choices: [FactorChoice] = []
            var content = [UInt8](repeating: 0, count: width)
            var p = m
            while true {
                var mask = (1 << k) - 1
                while mask >= 0 {
                    for (i, o) in offsets.enumerated() { content[i] = line.base[o] }
                    for r in relevant {
                        let w = r.write
                        let keep: Bool
                        if w.nonTemporal { keep = r.bit < 0 ? w.ntGuaranteed : (mask >> r.bit) & 1 == 1 }
                        else { keep = w.cachedIndex <= p }
                        guard keep else { continue }
                        for i in 0..<w.length {
                            let pos = position[w.offset + i]
                            if pos >= 0 { content[pos] = w.bytes[i] }
                        }
                    }
                    if seen[content] == nil {
                        seen[content] = hashes.count
                        contents += content
                        var h: UInt64 = 0
                        for (i, o) in offsets.enumerated() { h &+= byteHash(o, content[i]) }
                        hashes.append(h)
                        var nt: [UInt64] = []
                        for (b, n) in ntNodes.enumerated() where (mask >> b) & 1 == 1 { nt.append(ntSeqs[n - (cachedNode == 0 ? 1 : 0)]) }
                        choices.append(FactorChoice(prefix: withCached ? p : nil, nonTemporal: nt))
                    }
                    mask -= 1
                }
                if !withCached || p == g { break }
                p -= 1
            }
            guard hashes.count >= 2 else { continue }
            // Where the bytes go: contiguous offsets within one tracked run.
            var pieces: [FactorPiece] = []
            var i = 0
            while i < offsets.count {
                var j = i
                let run = line.runs.first { offsets[i] >= $0.lineOffset && offsets[i] < $0.lineOffset + $0.length }!
                while j + 1 < offsets.count && offsets[j + 1] == offsets[j] + 1 && offsets[j + 1] < run.lineOffset + run.length { j += 1 }
                pieces.append(FactorPiece(range: run.range, rangeOffset: run.rangeOffset + UInt64(offsets[i] - run.lineOffset),
                                          contentStart: i, length: j - i + 1))
                i = j + 1
            }
            factors.append(Factor(line: 0, offsets: offsets, pieces: pieces, count: hashes.count, contents: contents,
                                  hashes: hashes, choices: choices))
        }
        factors.sort { $0.offsets[0] < $1.offsets[0] }
        return factors
    }
}
