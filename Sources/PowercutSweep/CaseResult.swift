import PowercutModel
import PowercutTrace

/// What one case of a sweep came to. Workers send these to the parent as JSON lines.
public struct CaseResult: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        /// Recorded and replayed: no error finding.
        case clean
        /// Recorded and replayed: error findings.
        case failing
        /// The routine crashed the worker (a signal) or the worker died.
        case crashed
        /// The routine ran past the instruction budget.
        case budget
        /// The routine ran past the time limit (--timeout) and its worker was killed.
        case timeout
        /// The recorder refused (an instruction it cannot decode writes pmem, …).
        case error
    }

    public var dstOffset: UInt64
    public var srcOffset: UInt64
    public var size: UInt64
    public var status: Status
    /// Why, for crashed, budget and error.
    public var message: String?
    /// Error and warning findings by rule id.
    public var rules: [String: Int]
    /// Bytes at risk where durability was promised (the not-durable verdicts), by
    /// "position state" (e.g. "tail dirty"), from the ranges the model listed; bytes of
    /// ranges it left out for length are under `CaseResult.unlistedKey`.
    public var atRisk: [String: UInt64]
    /// Bytes at risk in all: the model's exact count (`Finding.bytes`), whatever the
    /// number of ranges listed.
    public var bytesAtRisk: UInt64
    /// The brief verdict lines, for the failing cases a person looks at.
    public var verdict: [String]
    public var events: Int
    public var instructions: UInt64
    public var recordSeconds: Double
    public var replaySeconds: Double

    public init(case c: SweepCase, status: Status, message: String? = nil) {
        dstOffset = c.dstOffset
        srcOffset = c.srcOffset
        size = c.size
        self.status = status
        self.message = message
        rules = [:]
        atRisk = [:]
        bytesAtRisk = 0
        verdict = []
        events = 0
        instructions = 0
        recordSeconds = 0
        replaySeconds = 0
    }

    public var sweepCase: SweepCase { SweepCase(dstOffset: dstOffset, srcOffset: srcOffset, size: size) }

    /// The `atRisk` key of bytes in ranges the model counted but did not list.
    public static let unlistedKey = "in ranges not listed"

    /// "at 0x7f3a…" differs per process (ASLR): patterns group on the message without it.
    static func maskingAddresses(_ s: String) -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i...].hasPrefix("0x") {
                out += "0x…"
                i = s.index(i, offsetBy: 2)
                while i < s.endIndex, s[i].isHexDigit { i = s.index(after: i) }
            } else {
                out.append(s[i])
                i = s.index(after: i)
            }
        }
        return out
    }

    /// Fills in the verdict from a replay.
    public mutating func judge(_ result: ReplayResult) {
        rules = [:]
        atRisk = [:]
        bytesAtRisk = 0
        verdict = []
        for f in result.findings where f.severity != .note {
            rules[f.rule.rawValue, default: 0] += 1
            let at = f.event.map { "#\($0)" } ?? "end"
            if f.rule == .notDurable {
                bytesAtRisk += f.bytes
                let listed = f.ranges.reduce(UInt64(0)) { $0 + $1.length }
                if f.bytes > listed { atRisk[Self.unlistedKey, default: 0] += f.bytes - listed }
            }
            for r in f.ranges {
                if f.rule == .notDurable {
                    atRisk["\(r.position?.rawValue ?? "-") \(r.state.rawValue)", default: 0] += r.length
                }
                let offset = r.start &- (f.op?.dst ?? 0)
                verdict.append("\(f.rule.rawValue) at \(at): dst+\(offset)+\(r.length) \(r.position?.rawValue ?? "-") \(r.state.rawValue) from \(r.nonTemporal ? "ntstore" : "store") #\(r.event.map(String.init) ?? "?")")
            }
            if f.ranges.isEmpty { verdict.append("\(f.rule.rawValue) at \(at)") }
        }
        events = Int(result.events)
        status = result.errors > 0 ? .failing : .clean
    }

    /// What kind of failure: the rules and the positions/states at risk, e.g.
    /// "not-durable: tail dirty". Cases with the same signature form one pattern.
    public var signature: String {
        switch status {
        case .clean: return "clean"
        case .crashed, .budget, .timeout, .error: return "\(status.rawValue): \(Self.maskingAddresses(message ?? ""))"
        case .failing:
            let risk = atRisk.keys.filter { $0 != Self.unlistedKey }.sorted().joined(separator: ", ")
            let others = rules.keys.filter { $0 != Rule.notDurable.rawValue && $0 != Rule.dirtyAtReturn.rawValue }.sorted()
            return (["bytes at risk: " + (risk.isEmpty ? "none" : risk)] + others).joined(separator: "; ")
        }
    }
}

/// A routine's results over the grid.
public struct RoutineResult: Sendable, Codable {
    public var routine: String
    public var contract: String
    public var domain: String
    public var cases: [CaseResult]

    public init(routine: String, contract: String, domain: String, cases: [CaseResult]) {
        self.routine = routine
        self.contract = contract
        self.domain = domain
        self.cases = cases.sorted { $0.sweepCase < $1.sweepCase }
    }

    public var failing: [CaseResult] { cases.filter { $0.status != .clean } }
    public var isClean: Bool { failing.isEmpty }

    /// Bytes at risk summed over the cases (the model's exact counts).
    public var bytesAtRisk: UInt64 { cases.reduce(0) { $0 + $1.bytesAtRisk } }

    /// Bytes at risk summed over the failing cases, by "position state".
    public var atRisk: [String: UInt64] {
        var out: [String: UInt64] = [:]
        for c in cases { for (k, v) in c.atRisk { out[k, default: 0] += v } }
        return out
    }

    /// The first failing case (in grid order) of each pattern, in the order of `patterns`.
    public var firstCases: [CaseResult] {
        var seen: [String: CaseResult] = [:]
        for c in failing where seen[c.signature] == nil { seen[c.signature] = c }
        return patterns.compactMap { seen[$0.signature] }
    }

    /// Failing cases grouped by signature; within a group, destination offsets that fail
    /// for the same sizes are merged: [(signature, [(dst offsets, sizes)])].
    public var patterns: [(signature: String, rows: [(dst: [UInt64], sizes: [UInt64])], cases: Int)] {
        var groups: [String: [CaseResult]] = [:]
        for c in failing { groups[c.signature, default: []].append(c) }
        return groups.keys.sorted { groups[$0]!.count > groups[$1]!.count || (groups[$0]!.count == groups[$1]!.count && $0 < $1) }.map { sig in
            let cs = groups[sig]!
            var sizesByDst: [UInt64: [UInt64]] = [:]
            for c in cs { sizesByDst[c.dstOffset, default: []].append(c.size) }
            var rows: [(dst: [UInt64], sizes: [UInt64])] = []
            for d in sizesByDst.keys.sorted() {
                let sizes = Array(Set(sizesByDst[d]!)).sorted()
                if let last = rows.last, last.sizes == sizes, let lastDst = last.dst.last, lastDst + 1 == d {
                    rows[rows.count - 1].dst.append(d)
                } else {
                    rows.append(([d], sizes))
                }
            }
            return (sig, rows, cs.count)
        }
    }
}
