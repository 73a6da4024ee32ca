import Testing
import PowercutTrace
@testable import PowercutModel
import PowercutTestSupport

/// A random valid trace built as events: up to `threads` threads interleaved, each
/// with its own ops, `pmem` ranges declared and released between events, marks, and
/// every other event kind.
func randomThreadedTrace(seed: UInt64, events count: Int, domain: Domain, lineSize: UInt64, threads: UInt32) -> Trace {
    var rng = SplitMix(state: seed)
    var header = TraceHeader()
    header.records = [.lineSize(lineSize), .domain(domain),
                      .pmem(PmemRange(base: 0x1000, length: 0x300, name: "a")),
                      .pmem(PmemRange(base: 0x2000, length: 0x100, isVolatile: true))]
    // Ranges that come and go: never overlapping one tracked at that point.
    let candidates: [(UInt64, UInt64, Bool)] = [(0x1300, 0x80, false), (0x1380, 0x40, true), (0x1400, 0xc0, false),
                                                (0x1300, 0x1c0, false), (0x0f80, 0x80, false)]
    var tracked: [(UInt64, UInt64)] = [(0x1000, 0x300), (0x2000, 0x100)]
    func overlaps(_ b: UInt64, _ n: UInt64) -> Bool { tracked.contains { b < $0.0 + $0.1 && $0.0 < b + n } }
    var events: [Event] = []
    var open: [UInt32: UInt64] = [:]
    var nextOp: UInt64 = 0
    var seq: UInt64 = 0
    func add(_ e: Event) {
        var e = e
        e.seq = seq
        seq += 1
        events.append(e)
    }
    for _ in 0..<count {
        let t = UInt32(rng.below(UInt64(threads)))
        let a = 0xf40 + rng.below(0x580)
        var e = Event(kind: .mark)
        e.thread = t
        switch rng.below(24) {
        case 0...5:
            e.kind = .store
            e.address = a
            e.size = 1 + rng.below(rng.below(4) == 0 ? 100 : 9)
            e.stack = UInt32(rng.below(3))
        case 6...8:
            e.kind = .ntstore
            e.address = a
            e.size = [4, 8, 16, 32, 64][Int(rng.below(5))]
        case 9...11:
            e.kind = [.clwb, .clflushopt, .clflush][Int(rng.below(3))]
            e.address = a
        case 12, 13:
            e.kind = [.sfence, .mfence, .fence][Int(rng.below(3))]
        case 14: e.kind = .wpqflush
        case 15, 16:
            if let id = open[t] {
                e.kind = .opEnd
                e.op = id
                open[t] = nil
            } else {
                nextOp += 1
                e.kind = .opBegin
                e.op = nextOp
                e.address = 0x1000 + rng.below(0x400)
                e.size = rng.below(130)
                e.contract = Contract.allCases[Int(rng.below(3))]
                open[t] = nextOp
            }
        case 17: e.kind = .durable; e.address = a; e.size = 1 + rng.below(80)
        case 18:
            let c = candidates[Int(rng.below(UInt64(candidates.count)))]
            if let i = tracked.firstIndex(where: { $0.0 == c.0 && $0.1 == c.1 }) {
                e.kind = .pmemRelease
                tracked.remove(at: i)
            } else if !overlaps(c.0, c.1) {
                e.kind = .pmem
                if c.2 { e.flags |= Event.Flags.isVolatile }
                tracked.append((c.0, c.1))
            }
            e.address = c.0
            e.size = c.1
        case 19:
            // Now and then the header's range goes away too.
            if rng.below(8) == 0, let i = tracked.firstIndex(where: { $0.0 == 0x1000 }) {
                e.kind = .pmemRelease
                e.address = 0x1000
                e.size = 0x300
                tracked.remove(at: i)
            }
        default: e.kind = .sfence
        }
        add(e)
    }
    for (t, id) in open.sorted(by: { $0.key < $1.key }) {
        var e = Event(kind: .opEnd)
        e.op = id
        e.thread = t
        add(e)
    }
    return Trace(header: header, events: events)
}

/// Docs/model.md with threads, read literally: a dictionary of bytes, each with
/// its state, its newest store, the thread of that store and, when flushing, the set of
/// threads whose write-backs cover it.
struct ThreadedReference {
    enum S: Equatable { case dirty, flushing(Set<UInt32>), wc, queued(hinted: Bool) }
    struct B { var state: S; var store: UInt64; var thread: UInt32 }
    var bytes: [UInt64: B] = [:]
    let domain: Domain
    let line: UInt64
    let ntEvicts: Bool
    let strictClflush: Bool
    var pmem: [(base: UInt64, length: UInt64, isVolatile: Bool)]
    var storesOutside: UInt64 = 0

    func declared(_ a: UInt64) -> (UInt64, UInt64, Bool)? { pmem.first { a >= $0.base && a - $0.base < $0.length } }
    func tracked(_ a: UInt64) -> Bool { declared(a).map { !$0.2 } ?? false }

    mutating func apply(_ e: Event) {
        let t = e.thread
        let base = e.address & ~(line - 1)
        switch e.kind {
        case .store, .ntstore:
            if (e.address..<(e.address + e.size)).contains(where: { declared($0) == nil }) { storesOutside += 1 }
            for a in e.address..<(e.address + e.size) where tracked(a) {
                bytes[a] = B(state: e.kind == .store ? .dirty : .wc, store: e.seq, thread: t)
            }
            if e.kind == .ntstore && ntEvicts {
                for a in Set((e.address..<(e.address + e.size)).map { $0 & ~(line - 1) }).flatMap({ $0..<($0 + line) }) {
                    if let b = bytes[a], b.state == .dirty { bytes[a]!.state = .flushing([t]) }
                }
            }
        case .clwb, .clflushopt, .clflush:
            if domain == .eadr { return }
            for a in base..<(base + line) {
                guard let b = bytes[a] else { continue }
                if b.state == .dirty {
                    if e.kind == .clflush && !strictClflush {
                        if domain == .wpq { bytes[a]!.state = .queued(hinted: false) } else { bytes[a] = nil }
                    } else {
                        bytes[a]!.state = .flushing([])
                    }
                }
                if case .flushing(var covers) = bytes[a]?.state {
                    covers.insert(t)
                    bytes[a]!.state = .flushing(covers)
                }
            }
        case .sfence, .mfence, .fence:
            if domain == .wpq {
                for (a, b) in bytes where b.state == .queued(hinted: true) { bytes[a] = nil }
            }
            for (a, b) in bytes {
                var moves: Bool
                switch b.state {
                case .flushing(let covers): moves = covers.contains(t)
                case .wc: moves = b.thread == t
                case .dirty: moves = domain == .eadr && b.thread == t
                case .queued: moves = false
                }
                if !moves { continue }
                if domain == .wpq { bytes[a]!.state = .queued(hinted: false) } else { bytes[a] = nil }
            }
        case .wpqflush:
            if domain == .wpq {
                for (a, b) in bytes where b.state == .queued(hinted: false) { bytes[a]!.state = .queued(hinted: true) }
            }
        case .pmem:
            pmem.append((e.address, e.size, e.isVolatile))
        case .pmemRelease:
            pmem.removeAll { $0.base == e.address && $0.length == e.size }
            for a in e.address..<(e.address + e.size) { bytes[a] = nil }
        default: break
        }
    }

    func atRisk(_ a: UInt64, _ len: UInt64, dirtyOnly: Bool) -> [UInt64: UInt64] {
        var out: [UInt64: UInt64] = [:]
        guard len > 0 else { return out }
        for x in a..<(a + len) {
            if let b = bytes[x], !dirtyOnly || b.state == .dirty { out[x] = b.store }
        }
        return out
    }
}

/// The reference's verdicts: (rule@event bytes) for every error, in the order decided.
func threadedReferenceVerdicts(_ trace: Trace, options: ReplayOptions) -> (verdicts: [String], outside: UInt64, checked: Bool) {
    let domain = options.domain ?? trace.header.domain
    var m = ThreadedReference(domain: domain, line: trace.header.lineSize, ntEvicts: options.ntEvicts,
                              strictClflush: options.strictClflush,
                              pmem: trace.header.pmem.map { ($0.base, $0.length, $0.isVolatile) })
    var out: [String] = []
    var waiting: [UInt32: [(op: Event, end: UInt64)]] = [:]
    var current: [UInt32: Event] = [:]
    var lastHint: UInt64?
    var checked = false
    func record(_ rule: String, _ at: String, _ risk: [UInt64: UInt64]) {
        if risk.isEmpty { return }
        out.append("\(rule)@\(at) " + risk.keys.sorted().map { "\(hex($0)):\(risk[$0]!)" }.joined(separator: ","))
    }
    for e in trace.events where e.kind != .stackDefinition {
        let t = e.thread
        // Out of bounds is judged on the store itself, before it is applied.
        if e.kind.isStore, let op = current[t], op.contract != .none {
            var outside: [UInt64: UInt64] = [:]
            for a in e.address..<(e.address + e.size) where m.declared(a) != nil && !(a >= op.address && a - op.address < op.size) {
                outside[a] = e.seq
            }
            record("out-of-bounds-store", "#\(e.seq)", outside)
        }
        m.apply(e)
        switch e.kind {
        case .opBegin:
            current[t] = e
            if e.contract != .none { checked = true }
        case .opEnd:
            guard let op = current[t] else { break }
            current[t] = nil
            if op.contract == .persist { record("not-durable", "#\(e.seq)", m.atRisk(op.address, op.size, dirtyOnly: false)) }
            if op.contract == .flushcache {
                if domain != .eadr { record("dirty-at-return", "#\(e.seq)", m.atRisk(op.address, op.size, dirtyOnly: true)) }
                waiting[t, default: []].append((op, e.seq))
            }
        case .wpqflush:
            lastHint = e.seq
        case .sfence, .mfence, .fence:
            waiting[t] = waiting[t, default: []].filter { w in
                if domain == .wpq && !(lastHint.map { $0 > w.end } ?? false) { return true }
                record("not-durable", "#\(e.seq)", m.atRisk(w.op.address, w.op.size, dirtyOnly: false))
                return false
            }
        case .durable:
            checked = true
            record("not-durable", "#\(e.seq)", m.atRisk(e.address, e.size, dirtyOnly: false))
        default: break
        }
    }
    for w in waiting.values.flatMap({ $0 }).sorted(by: { $0.end < $1.end }) {
        record("not-durable", "end", m.atRisk(w.op.address, w.op.size, dirtyOnly: false))
    }
    return (out, m.storesOutside, checked)
}

func threadedModelVerdicts(_ r: ReplayResult) -> [String] {
    r.findings.compactMap { f -> String? in
        guard f.severity == .error else { return nil }
        var risk: [UInt64: UInt64] = [:]
        for g in f.ranges where g.state != .outside {
            for a in g.start..<(g.start + g.length) { risk[a] = g.event! }
        }
        if risk.isEmpty { return nil }
        return "\(f.rule.rawValue)@\(f.event.map { "#\($0)" } ?? "end") " + risk.keys.sorted().map { "\(hex($0)):\(risk[$0]!)" }.joined(separator: ",")
    }
}

@Suite struct ThreadedRandomizedTests {
    @Test(arguments: Domain.allCases)
    func threadsAndRangesAgreeWithTheLiteralReading(domain: Domain) {
        var compared = 0
        for seed in UInt64(1)...20 {
            for lineSize: UInt64 in [64, 16, 256] {
                for threads: UInt32 in [1, 2, 3] {
                    var options = ReplayOptions()
                    options.maxRangesPerFinding = .max
                    options.ntEvicts = seed % 5 == 0
                    options.strictClflush = seed % 7 == 0
                    let trace = randomThreadedTrace(seed: seed &* 104_729 &+ UInt64(domain.rawValue) &* 31 &+ UInt64(threads),
                                                    events: 400, domain: domain, lineSize: lineSize, threads: threads)
                    let result = Replayer.replay(trace, options: options)
                    let ours = threadedModelVerdicts(result)
                    let reference = threadedReferenceVerdicts(trace, options: options)
                    let what = "seed \(seed), line \(lineSize), \(threads) threads, domain \(domain)"
                    #expect(ours == reference.verdicts, "\(what)")
                    #expect(result.storesOutsidePmem == reference.outside, "\(what)")
                    #expect(result.checkedAnything == reference.checked, "\(what)")
                    if ours != reference.verdicts { return }
                    compared += ours.count
                }
            }
        }
        // The traces must exercise the rules, or the agreement means nothing.
        #expect(compared > 1000)
    }
}
