import Glibc
import Testing
import PowercutTrace
import PowercutTestSupport
@testable import PowercutModel

/// A random but valid trace: ops with every contract, every event kind, stacks, data,
/// two pmem ranges (one volatile) and stores that stray outside them.
func randomTrace(seed: UInt64, events: Int, domain: Domain, lineSize: UInt64 = 64) -> String {
    var rng = SplitMix(state: seed)
    var s = "powercut-trace 1\nline-size \(lineSize)\ndomain \(domain)\n"
    s += "pmem 0x1000 0x400 name=a\npmem 0x2000 0x100 volatile\nstack 1 0x401000 0x402000\n"
    var op: UInt64 = 0
    var open = false
    var stacks = 1
    for _ in 0..<events {
        let a = 0xf80 + rng.below(0x500)  // mostly pmem, some before and after it
        switch rng.below(20) {
        case 0...5:
            let n = 1 + rng.below(rng.below(4) == 0 ? 100 : 9)
            s += "store 0x\(hex(a)) \(n)"
            if rng.below(4) == 0 { s += " data=" + (0..<n).map { _ in String(format2(rng.below(256))) }.joined() }
            if rng.below(2) == 0 { s += " stack=\(1 + rng.below(UInt64(stacks)))" }
            s += "\n"
        case 6...8: s += "ntstore 0x\(hex(a)) \([4, 8, 16, 32, 64][Int(rng.below(5))])\n"
        case 9...11: s += ["clwb", "clflushopt", "clflush"][Int(rng.below(3))] + " 0x\(hex(a))\n"
        case 12: s += ["sfence", "mfence", "fence"][Int(rng.below(3))] + "\n"
        case 13: s += "wpqflush\n"
        case 14, 15:
            if open {
                s += "op \(op) end\n"
                open = false
            } else {
                op += 1
                let contract = ["flushcache", "persist", "none"][Int(rng.below(3))]
                s += "op \(op) begin dst=0x\(hex(0x1000 + rng.below(0x380))) len=\(rng.below(130)) contract=\(contract)\n"
                open = true
            }
        case 16: s += "durable 0x\(hex(a)) \(1 + rng.below(80))\n"
        case 17:
            stacks += 1
            s += "stack \(stacks) 0x\(hex(0x400000 + rng.below(0x1000)))\n"
        default: s += "sfence\n"
        }
    }
    if open { s += "op \(op) end\n" }
    return s
}

func format2(_ v: UInt64) -> String {
    let h = hex(v)
    return h.count == 1 ? "0" + h : h
}

/// The spec, read literally: a dictionary of byte states, no bit tricks, no sparse
/// lines. Slow and obviously right; the model must agree with it.
struct ReferenceModel {
    enum S: Equatable { case dirty, flushing(UInt64), wc, queued(hinted: Bool) }
    var bytes: [UInt64: (state: S, store: UInt64)] = [:]
    let domain: Domain
    let line: UInt64
    let pmem: [(UInt64, UInt64, Bool)]

    func tracked(_ a: UInt64) -> Bool { pmem.contains { a >= $0.0 && a < $0.0 + $0.1 && !$0.2 } }

    mutating func apply(_ e: Event) {
        switch e.kind {
        case .store, .ntstore:
            for a in e.address..<(e.address + e.size) where tracked(a) {
                bytes[a] = (e.kind == .store ? .dirty : .wc, e.seq)
            }
        case .clwb, .clflushopt, .clflush:
            if domain == .eadr { return }
            let base = e.address & ~(line - 1)
            for a in base..<(base + line) {
                guard let b = bytes[a], b.state == .dirty else { continue }
                if e.kind == .clflush {
                    if domain == .wpq { bytes[a] = (.queued(hinted: false), b.store) } else { bytes[a] = nil }
                } else {
                    bytes[a] = (.flushing(e.seq), b.store)
                }
            }
        case .sfence, .mfence, .fence:
            for (a, b) in bytes {
                switch (domain, b.state) {
                case (.eadr, _): bytes[a] = nil
                case (.adr, .flushing), (.adr, .wc): bytes[a] = nil
                case (.wpq, .queued(true)): bytes[a] = nil
                case (.wpq, .flushing), (.wpq, .wc): bytes[a] = (.queued(hinted: false), b.store)
                default: break
                }
            }
        case .wpqflush:
            if domain == .wpq {
                for (a, b) in bytes where b.state == .queued(hinted: false) { bytes[a] = (.queued(hinted: true), b.store) }
            }
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

/// (rule, event, byte -> store) for every error finding over tracked bytes.
func referenceVerdicts(_ trace: Trace, domain: Domain) -> [String] {
    var m = ReferenceModel(domain: domain, line: trace.header.lineSize,
                           pmem: trace.header.pmem.map { ($0.base, $0.length, $0.isVolatile) })
    var out: [String] = []
    var waiting: [(Event, Bool)] = []
    var current: Event?
    func record(_ rule: String, _ at: String, _ risk: [UInt64: UInt64]) {
        if risk.isEmpty { return }
        out.append("\(rule)@\(at) " + risk.keys.sorted().map { "\(hex($0)):\(risk[$0]!)" }.joined(separator: ","))
    }
    for e in trace.events where e.kind != .stackDefinition {
        m.apply(e)
        switch e.kind {
        case .opBegin: current = e
        case .opEnd:
            guard let op = current else { break }
            if op.contract == .persist { record("not-durable", "#\(e.seq)", m.atRisk(op.address, op.size, dirtyOnly: false)) }
            if op.contract == .flushcache {
                if domain != .eadr { record("dirty-at-return", "#\(e.seq)", m.atRisk(op.address, op.size, dirtyOnly: true)) }
                waiting.append((op, false))
            }
        case .wpqflush:
            waiting = waiting.map { ($0.0, true) }
        case .sfence, .mfence, .fence:
            waiting = waiting.filter { w in
                if domain == .wpq && !w.1 { return true }
                record("not-durable", "#\(e.seq)", m.atRisk(w.0.address, w.0.size, dirtyOnly: false))
                return false
            }
        case .durable:
            record("not-durable", "#\(e.seq)", m.atRisk(e.address, e.size, dirtyOnly: false))
        default: break
        }
    }
    for w in waiting { record("not-durable", "end", m.atRisk(w.0.address, w.0.size, dirtyOnly: false)) }
    return out
}

func modelVerdicts(_ r: ReplayResult) -> [String] {
    r.findings.compactMap { f -> String? in
        guard f.rule == .notDurable || f.rule == .dirtyAtReturn else { return nil }
        var risk: [UInt64: UInt64] = [:]
        for g in f.ranges where g.state != .outside {
            for a in g.start..<(g.start + g.length) { risk[a] = g.event! }
        }
        if risk.isEmpty { return nil }
        return "\(f.rule.rawValue)@\(f.event.map { "#\($0)" } ?? "end") " + risk.keys.sorted().map { "\(hex($0)):\(risk[$0]!)" }.joined(separator: ",")
    }
}

@Suite struct RandomizedTests {
    @Test(arguments: Domain.allCases)
    func theModelAgreesWithTheLiteralReading(domain: Domain) throws {
        for seed in UInt64(1)...60 {
            for lineSize: UInt64 in [64, 16, 256] {
                let text = randomTrace(seed: seed &* 7919 &+ UInt64(domain.rawValue), events: 300, domain: domain, lineSize: lineSize)
                let trace = try Trace(reader: try TraceReader(text: text))
                var options = ReplayOptions()
                options.maxRangesPerFinding = .max
                let ours = modelVerdicts(Replayer.replay(trace, options: options))
                let reference = referenceVerdicts(trace, domain: domain)
                #expect(ours == reference, "seed \(seed), line \(lineSize), domain \(domain)")
                if ours != reference { return }
            }
        }
    }

    @Test func textAndBinaryFormsGiveIdenticalVerdicts() throws {
        let dir = "/tmp/powercut-random-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = system("rm -rf \(dir)") }
        for seed in UInt64(1)...40 {
            let domain = Domain.allCases[Int(seed % 3)]
            let text = randomTrace(seed: seed, events: 400, domain: domain)
            try OutputFile.write(text, to: "\(dir)/t.pct")
            try convertTrace(from: "\(dir)/t.pct", to: "\(dir)/t.pctb", form: .binary)
            for options in [ReplayOptions(), ReplayOptions(ntEvicts: true, strictClflush: true, recordCuts: true)] {
                let a = try Replayer.replay(file: "\(dir)/t.pct", options: options).0
                let b = try Replayer.replay(file: "\(dir)/t.pctb", options: options).0
                #expect(a.findings == b.findings, "seed \(seed)")
                #expect(a.cuts == b.cuts && a.events == b.events)
            }
            // And back to text: the same bytes as the canonical text of the first read.
            try convertTrace(from: "\(dir)/t.pctb", to: "\(dir)/u.pct", form: .text)
            #expect(try Trace(contentsOf: "\(dir)/t.pct").text == (try Trace(contentsOf: "\(dir)/u.pct").text))
        }
    }
}
