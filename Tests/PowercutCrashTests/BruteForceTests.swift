import PowercutCrash
import PowercutModel
import PowercutTrace
import Testing

/// The image set of Docs/crash-images.md, computed the slow way: for every line, every
/// prefix of its cached writes from the guaranteed one and every subset of its
/// at-risk non-temporal writes; the product over lines; deduplicated.
struct BruteForce {
    let trace: Trace
    let domain: Domain
    let strictClflush: Bool
    let ntEvicts: Bool

    struct W {
        var index: Int  // event index
        var line: UInt64
        var offset: Int
        var bytes: [UInt8]
        var nt: Bool
        var thread: UInt32
    }

    /// A tracked range and its life: declared by event `declared` (-1: the header),
    /// released by event `released`.
    struct Life {
        var range: PmemRange
        var declared: Int
        var released: Int?
    }

    var lives: [Life] {
        var out = trace.header.pmem.filter { !$0.isVolatile }.map { Life(range: $0, declared: -1, released: nil) }
        for (i, e) in trace.events.enumerated() {
            if e.kind == .pmem && !e.isVolatile { out.append(Life(range: PmemRange(base: e.address, length: e.size), declared: i, released: nil)) }
            if e.kind == .pmemRelease, let k = out.firstIndex(where: { $0.range.base == e.address && $0.released == nil && $0.declared < i }) {
                out[k].released = i
            }
        }
        return out
    }

    /// Events before `cut`: the image is the ranges tracked at the cut, by address.
    func images(at cut: Int) -> Set<[UInt8]> {
        var result: Set<[UInt8]> = [[]]
        for life in lives.sorted(by: { $0.range.base < $1.range.base })
        where life.declared < cut && (life.released ?? Int.max) >= cut {
            let part = images(at: cut, of: life)
            result = Set(result.flatMap { a in part.map { a + $0 } })
        }
        return result
    }

    func images(at cut: Int, of life: Life) -> Set<[UInt8]> {
        let ls = Int(trace.header.lineSize)
        let range = life.range
        var initial = [UInt8](repeating: 0, count: Int(range.length))
        for case .initial(let a, let d) in trace.header.records where range.contains(a) {
            for (i, b) in d.enumerated() { initial[Int(a - range.base) + i] = b }
        }
        let events = Array(trace.events.prefix(cut))
        // Writes per line, made while the range was tracked.
        var writes: [UInt64: [W]] = [:]
        for (i, e) in events.enumerated() where e.kind.isStore && i > life.declared && range.contains(e.address) {
            let bytes = trace.batch.data(of: e)
            var a = e.address
            var done = 0
            while done < Int(e.size) {
                let line = a & ~UInt64(ls - 1)
                let n = min(Int(e.size) - done, Int(line) + ls - Int(a))
                writes[line, default: []].append(W(index: i, line: line, offset: Int(a - line),
                                                   bytes: Array(bytes[bytes.startIndex + done..<bytes.startIndex + done + n]),
                                                   nt: e.kind == .ntstore, thread: e.thread))
                done += n
                a += UInt64(n)
            }
        }
        func fenceBy(_ t: UInt32, after s: Int) -> Int? {
            events.indices.first { $0 > s && events[$0].kind.isFence && events[$0].thread == t }
        }
        func anyFence(after s: Int) -> Int? { events.indices.first { $0 > s && events[$0].kind.isFence } }
        func hintAndFence(after s: Int) -> Bool {
            guard let h = events.indices.first(where: { $0 > s && events[$0].kind == .wpqflush }) else { return false }
            return anyFence(after: h) != nil
        }
        /// The first index by which a write-back of `line` issued after `s` reached the
        /// persistence domain's adr level (a write-back then its thread's fence, or clflush).
        func adrDurable(line: UInt64, after s: Int) -> [Int] {
            var points: [Int] = []
            for t in events.indices where t > s && events[t].address & ~UInt64(ls - 1) == line {
                let e = events[t]
                if e.kind == .clflush && !strictClflush { points.append(t) }
                else if e.kind.isWriteBack, let f = fenceBy(e.thread, after: t) { points.append(f) }
            }
            for t in events.indices where t > s && ntEvicts && events[t].kind == .ntstore {
                let e = events[t]
                let first = e.address & ~UInt64(ls - 1), last = (e.address + e.size - 1) & ~UInt64(ls - 1)
                if line >= first && line <= last, let f = fenceBy(e.thread, after: t) { points.append(f) }
            }
            return points
        }
        func cachedGuaranteed(_ w: W) -> Bool {
            switch domain {
            case .eadr: return fenceBy(w.thread, after: w.index) != nil
            case .adr: return !adrDurable(line: w.line, after: w.index).isEmpty
            case .wpq: return adrDurable(line: w.line, after: w.index).contains { hintAndFence(after: $0) }
            }
        }
        func ntGuaranteed(_ w: W) -> Bool {
            guard let f = fenceBy(w.thread, after: w.index) else { return false }
            return domain == .wpq ? hintAndFence(after: f) : true
        }
        // Per line: its distinct contents.
        var image = initial
        var perLine: [(UInt64, [[UInt8]])] = []
        for (line, ws) in writes.sorted(by: { $0.key < $1.key }) {
            let cached = ws.filter { !$0.nt }
            let nts = ws.filter { $0.nt }
            var g = 0
            for (i, c) in cached.enumerated() where cachedGuaranteed(c) { g = i + 1 }
            let freeNT = nts.filter { !ntGuaranteed($0) }
            var contents = Set<[UInt8]>()
            for p in g...cached.count {
                for mask in 0..<(1 << freeNT.count) {
                    var chosen = Array(cached.prefix(p)) + nts.filter { ntGuaranteed($0) }
                    for (b, w) in freeNT.enumerated() where (mask >> b) & 1 == 1 { chosen.append(w) }
                    chosen.sort { $0.index < $1.index }
                    var bytes = (0..<ls).map { i -> UInt8 in
                        let a = Int(line) + i - Int(range.base)
                        return a >= 0 && a < initial.count ? initial[a] : 0
                    }
                    for w in chosen { for (i, b) in w.bytes.enumerated() { bytes[w.offset + i] = b } }
                    contents.insert(bytes)
                }
            }
            perLine.append((line, Array(contents)))
        }
        var result = Set<[UInt8]>()
        func rec(_ i: Int) {
            if i == perLine.count { result.insert(image); return }
            let (line, options) = perLine[i]
            for c in options {
                for (j, b) in c.enumerated() {
                    let a = Int(line) + j - Int(range.base)
                    if a >= 0 && a < image.count { image[a] = b }
                }
                rec(i + 1)
            }
        }
        rec(0)
        return result
    }
}

/// A small deterministic generator.
struct Rand {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// With `lifetimes`, a second range (right after the first) is declared between events
/// and, in some traces, the first one released later; stores go to both ranges at any
/// time, including before the declaration and after the release.
func randomTrace(seed: UInt64, lineSize: UInt64, domain: Domain, threads: UInt32, events: Int,
                 lifetimes: Bool = false) -> Trace {
    var r = Rand(state: seed)
    let base: UInt64 = 0x1000
    let length = lineSize * 3
    var initial: [(UInt64, [UInt8])] = []
    if r.below(2) == 0 { initial.append((base + UInt64(r.below(Int(length) - 4)), [1, 2, 1])) }
    var b = TraceBuilder(lineSize: lineSize, domain: domain, pmem: [PmemRange(base: base, length: length)], initial: initial)
    let declareAt = lifetimes ? r.below(events) : -1
    let releaseAt = lifetimes && r.below(3) != 0 ? declareAt + 1 + r.below(events - declareAt) : -1
    let span = lifetimes ? length * 2 : length
    for k in 0..<events {
        if k == declareAt { b.declare(base + length, length) }
        if k == releaseAt { b.release(base, length) }
        let t = UInt32(r.below(Int(threads)))
        // A store stays inside one range.
        func place(_ size: Int) -> UInt64 {
            let which = UInt64(r.below(Int(span / length)))
            return base + which * length + UInt64(r.below(Int(length) - size + 1))
        }
        switch r.below(10) {
        case 0, 1, 2:
            let size = 1 + r.below(min(9, Int(lineSize) + 2))
            let a = place(size)
            b.store(a, (0..<size).map { _ in UInt8(r.below(3)) }, thread: t)
        case 3, 4:
            let size = 1 + r.below(min(9, Int(lineSize)))
            let a = place(size)
            b.store(a, (0..<size).map { _ in UInt8(r.below(3)) }, nt: true, thread: t)
        case 5: b.event(.clwb, base + UInt64(r.below(Int(span))), thread: t)
        case 6: b.event(r.below(2) == 0 ? .clflush : .clflushopt, base + UInt64(r.below(Int(span))), thread: t)
        case 7, 8: b.event(r.below(3) == 0 ? .mfence : .sfence, thread: t)
        default: b.event(domain == .wpq ? .wpqflush : .sfence, thread: t)
        }
    }
    return b.trace
}

@Suite struct BruteForceTests {
    @Test(arguments: [Domain.adr, .eadr, .wpq])
    func everyCutMatchesTheSpecEnumerator(domain: Domain) throws {
        try compare(domain: domain, lifetimes: false)
    }

    /// A range declared between events is in the images from its declaration on
    /// (stores before it do not count); a released range and its lines leave them.
    @Test(arguments: [Domain.adr, .eadr, .wpq])
    func rangesDeclaredAndReleasedBetweenEventsMatchTheSpecEnumerator(domain: Domain) throws {
        try compare(domain: domain, lifetimes: true)
    }

    func compare(domain: Domain, lifetimes: Bool) throws {
        for (i, lineSize) in [UInt64(8), 16, 64].enumerated() {
            for threads in [UInt32(1), 2] {
                for strict in [false, true] {
                    for evicts in [false, true] where !(strict && evicts) {
                        for seed in 0..<12 {
                            let s = UInt64(seed * 1000 + i * 100) + UInt64(threads) * 10 + (strict ? 1 : 0) + (evicts ? 2 : 0)
                            let trace = randomTrace(seed: s, lineSize: lineSize, domain: domain, threads: threads,
                                                    events: lifetimes ? 12 : 10, lifetimes: lifetimes)
                            var options = ReplayOptions()
                            options.strictClflush = strict
                            options.ntEvicts = evicts
                            let walked = try walk(trace, selection: .all, options: options)
                            let brute = BruteForce(trace: trace, domain: domain, strictClflush: strict, ntEvicts: evicts)
                            #expect(walked.cuts.count == trace.events.count + 1)
                            if lifetimes {
                                // The image's set of ranges changes at the declaration and the release.
                                let sets = Set(walked.cuts.map { $0.ranges })
                                #expect(sets.count >= 2)
                            }
                            var everChecked = Set<[UInt8]>()
                            var everPossible = Set<[UInt8]>()
                            var previous = Set<[UInt8]>()
                            for (k, cut) in walked.cuts.enumerated() {
                                let expected = brute.images(at: Int(cut.cut))
                                let got = walked.images[k]
                                let label = "domain \(domain) line \(lineSize) threads \(threads) strict \(strict) evicts \(evicts) seed \(s) cut \(cut.cut)"
                                #expect(Set(got) == expected, "\(label)")
                                #expect(got.count == expected.count, "distinct: \(label)")
                                #expect(cut.count == .exact(UInt64(expected.count)), "count: \(label)")
                                for (j, image) in got.enumerated() {
                                    if walked.covered[k][j] {
                                        #expect(previous.contains(image), "covered image not in the previous cut: \(label)")
                                    } else {
                                        everChecked.insert(image)
                                    }
                                }
                                everPossible.formUnion(expected)
                                previous = expected
                            }
                            #expect(everChecked == everPossible)
                        }
                    }
                }
            }
        }
    }
}
