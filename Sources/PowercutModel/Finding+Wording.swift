import PowercutTrace

// What a finding says, in one place per rule: its headline, each range's state and
// what is missing, and the fix. Every printer (text, JSON, SARIF, JUnit, GitHub
// annotations, explain) formats these values; none words a finding on its own.

extension OpInfo {
    /// "op 1 (memcpy_flushcache)", or "op 1" for an unnamed op.
    public var label: String { "op \(id)" + (name.map { " (\($0))" } ?? "") }
}

extension Finding {
    /// One sentence: what went wrong, where (`8 bytes of op 1 (memcpy_flushcache) not
    /// durable at its drain point, #6`).
    public var headline: String {
        let opText = op?.label ?? ""
        let at = event.map { "#\($0)" } ?? "the end of the trace"
        switch rule {
        case .notDurable:
            if let op {
                if event == nil {
                    return "\(count(bytes, "byte")) of \(opText) not durable at the end of the trace (no drain point)"
                }
                let point = op.contract == .persist ? "its return" : "its drain point"
                return "\(count(bytes, "byte")) of \(opText) not durable at \(point), \(at)"
            }
            return "\(count(bytes, "byte")) not durable at the durable assertion \(at)"
        case .dirtyAtReturn:
            return "\(opText) returned at \(at) with \(count(bytes, "byte")) dirty in the cache"
        case .outOfBoundsStore:
            return "\(opText) stored \(count(bytes, "byte")) outside its destination at \(at)"
        case .missingDrain:
            return "\(opText) has no fence after it before the trace ends; its range is judged at the end"
        case .redundantFlush:
            return "\(eventKind?.keyword ?? "write-back") \(at) of line 0x\(hex(line ?? 0)), which has no dirty byte"
        case .unnecessaryFlush:
            return "\(eventKind?.keyword ?? "write-back") \(at) of line 0x\(hex(line ?? 0)) is unnecessary in this domain or range"
        }
    }

    /// "error: not-durable: HEADLINE".
    public var title: String { "\(severity): \(rule.rawValue): \(headline)" }

    /// Whether the finding is about one write-back (a flush note) rather than bytes.
    public var isFlushNote: Bool { rule == .redundantFlush || rule == .unnecessaryFlush }
}

extension ByteRange {
    /// `0x10048-0x10049 (2 bytes, tail): dirty, from store #4`.
    public var summary: String {
        let span = length == 1 ? "0x\(hex(start))" : "0x\(hex(start))-0x\(hex(start &+ length &- 1))"
        let pos = position.map { ", \($0.rawValue)" } ?? ""
        var s = "\(span) (\(count(length, "byte"))\(pos)): \(state.rawValue)"
        if let e = event { s += ", from \(nonTemporal ? "ntstore" : "store") #\(e)" }
        if let v = via {
            s += state == .flushing ? ", written back by #\(v)" : ", queued by #\(v)"
        }
        return s
    }

    /// The missing instructions in words, naming lines and events.
    public var missingText: String {
        let (first, last) = lines
        let lineText = first == last ? "line 0x\(hex(first))" : "lines 0x\(hex(first))-0x\(hex(last))"
        let ev = event.map { "#\($0)" } ?? "?"
        switch missing {
        case .writeBackAndFence: return "a write-back (clwb/clflushopt/clflush) of \(lineText) after store \(ev), then a fence"
        case .fence: return "a fence after the write-back" + (via.map { " #\($0)" } ?? "")
        case .fenceAfterNT: return "a fence after the non-temporal store \(ev)"
        case .flushHintAndFence: return "a flush-hint write (wpqflush) and then a fence" + (via.map { " after #\($0)" } ?? "")
        case .inBounds: return "the store \(ev) kept inside the op's destination"
        case .pmemRecord: return "a pmem record declaring these bytes (memory outside pmem is never durable)"
        case .none: return "nothing"
        }
    }
}

/// "1 byte", "2 bytes": a count with its noun, singular or plural.
public func count(_ n: some BinaryInteger, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}

/// Where a fix must take effect and what it may name: the cut point durability was
/// promised at, and the op and domain of the bytes.
public struct FixContext: Sendable {
    public var domain: Domain
    public var lineSize: UInt64
    /// The op whose bytes they are (explain's chosen op), if any.
    public var op: OpInfo?
    /// "the fence at #6", "the end of the trace".
    public var place: String
    /// The event of the promise (nil: the end of the trace).
    public var promiseEvent: UInt64?

    public init(domain: Domain, lineSize: UInt64, op: OpInfo?, place: String, promiseEvent: UInt64?) {
        self.domain = domain
        self.lineSize = lineSize
        self.op = op
        self.place = place
        self.promiseEvent = promiseEvent
    }
}

extension Finding {
    /// The exact fix, one sentence each, for bytes still at risk (`atRisk`) where
    /// `context` says durability was promised, and for `finding` (nil: no finding, only
    /// the bytes). One fix per line for dirty bytes (a write-back after the line's last
    /// store covers the earlier ones), one per state for the others (a fence after the
    /// last write-back or non-temporal store covers them all).
    public static func fixes(for finding: Finding?, atRisk: [ByteRange], context: FixContext) -> [String] {
        var out: [String] = []
        func add(_ s: String) { if !out.contains(s) { out.append(s) } }
        let place = context.place
        let lineSize = context.lineSize
        // A fence is already asked for (missing drain): no per-state fence sentences.
        var fencesDone = false
        let op = context.op
        if let f = finding {
            let at = f.event.map { "#\($0)" } ?? "the end of the trace"
            switch f.rule {
            case .redundantFlush:
                add("drop the write-back at \(at), or point it at a line that was stored to (line 0x\(hex(f.line ?? 0)) had nothing dirty)")
                return out
            case .unnecessaryFlush:
                add("drop the write-back at \(at): in \(context.domain) or a volatile range a write-back is overhead")
                return out
            case .missingDrain:
                let end = f.op?.end.map { "#\($0)" } ?? "its return"
                add("add a fence after \(f.op?.label ?? "the op") returns at \(end) (the caller's drain, e.g. pmem_drain)")
                // That one fence drains every write-back and non-temporal store; only
                // dirty bytes need more.
                if !atRisk.contains(where: { $0.state == .dirty }) { return out }
                fencesDone = true
            case .outOfBoundsStore:
                for r in atRisk {
                    let o = f.op
                    let range = o.map { "[0x\(hex($0.dst)), 0x\(hex($0.dst &+ $0.length)))" } ?? "its destination"
                    add("keep store #\(r.event.map(String.init) ?? "?") inside \(o?.label ?? "the op")'s destination \(range), or widen the op's len")
                }
                return out
            case .notDurable, .dirtyAtReturn:
                break
            }
        }
        let risky = atRisk.filter { $0.state != .durable }
        func lineText(_ first: UInt64, _ last: UInt64) -> String {
            first == last ? "line 0x\(hex(first))" : "lines 0x\(hex(first))-0x\(hex(last))"
        }
        func latest(_ xs: [UInt64?]) -> String? { xs.compactMap { $0 }.max().map { "#\($0)" } }
        var dirtyLines: [UInt64: [ByteRange]] = [:]
        for r in risky where r.state == .dirty {
            var line = r.start & ~(lineSize - 1)
            let last = (r.start &+ (r.length - 1)) & ~(lineSize - 1)
            while true {
                dirtyLines[line, default: []].append(r)
                if line >= last { break }
                line += lineSize
            }
        }
        // Lines with the same last store share one sentence.
        var byStore: [(store: String, lines: [UInt64], ranges: [ByteRange])] = []
        for line in dirtyLines.keys.sorted() {
            let ranges = dirtyLines[line]!
            let st = latest(ranges.map(\.event)) ?? "?"
            if let i = byStore.firstIndex(where: { $0.store == st && $0.lines.last.map { $0 &+ lineSize == line } == true }) {
                byStore[i].lines.append(line)
                byStore[i].ranges += ranges
            } else {
                byStore.append((st, [line], ranges))
            }
        }
        for g in byStore {
            var s = "write back \(lineText(g.lines.first!, g.lines.last!)) after store \(g.store) and before \(place)"
            if let op, op.contract == .flushcache, let end = op.end, context.promiseEvent != end,
               g.ranges.contains(where: { r in
                   r.event.map { $0 > op.begin && $0 < end } == true && r.start >= op.dst && r.start - op.dst < op.length
               }) {
                s += " (inside \(op.label), before its return at #\(end): a flushcache routine must return nothing dirty)"
            }
            if context.domain == .wpq { s += ", with a fence before the flush-hint write" }
            add(s)
        }
        if fencesDone { return out }
        // Write-backs and non-temporal stores need the same thing: one fence after the last.
        let flushing = latest(risky.filter { $0.state == .flushing }.map(\.via))
        let wc = latest(risky.filter { $0.state == .wc }.map(\.event))
        switch (flushing, wc) {
        case let (w?, n?): add("add a fence after write-back \(w) and non-temporal store \(n), before \(place)")
        case let (w?, nil): add("add a fence after write-back \(w), before \(place)")
        case let (nil, n?): add("add a fence after non-temporal store \(n), before \(place)")
        case (nil, nil): break
        }
        let queued = risky.filter { $0.state == .queued }
        if !queued.isEmpty {
            add("add a flush-hint write (wpqflush) and a fence after \(latest(queued.map { $0.via ?? $0.event }) ?? "the fence"), before \(place)")
        }
        for r in risky where r.state == .outside {
            add("declare 0x\(hex(r.start))-0x\(hex(r.start &+ (r.length - 1))) with a pmem record (memory outside pmem is never durable)")
        }
        return out
    }
}

/// Something said about a whole trace rather than about one cut point: that nothing in
/// it was judged, that stores fell outside every declared pmem range, that findings were
/// left out of the list. Printers show these with the trace's findings; they are not
/// findings (no cut point, no fingerprint) and never change the exit status.
public struct TraceNotice: Sendable, Equatable {
    /// A stable ID: `nothing-checked`, `stores-outside-pmem`, `findings-omitted`.
    public var id: String
    public var severity: Severity
    public var message: String

    /// "warning: nothing-checked: MESSAGE".
    public var title: String { "\(severity): \(id): \(message)" }
}

extension ReplayResult {
    /// All findings, kept or left out.
    public var omittedFindingCount: Int { omittedFindings.values.reduce(0, +) }

    /// What the printers say about the trace as a whole, most severe first.
    public var notices: [TraceNotice] {
        var out: [TraceNotice] = []
        if !checkedAnything {
            out.append(TraceNotice(id: "nothing-checked", severity: .warning, message:
                "nothing in this trace was checked: it has no op with a contract (flushcache or persist) and no "
                + "durable assertion, so no cut point was judged. An op with a contract is checked at its return "
                + "(persist) or drain point (flushcache), a durable assertion at its event"))
        }
        if storesOutsidePmem > 0 {
            out.append(TraceNotice(id: "stores-outside-pmem", severity: .note, message:
                "\(count(storesOutsidePmem, "store")) wrote bytes outside every declared pmem range; "
                + "those bytes are not tracked (a pmem record declaring them would have them checked)"))
        }
        let omitted = omittedFindingCount
        if omitted > 0 {
            let parts = [Severity.error, .warning, .note].compactMap { s -> String? in
                let n = omittedFindings[s, default: 0]
                return n > 0 ? count(n, s.rawValue) : nil
            }
            out.append(TraceNotice(id: "findings-omitted", severity: .note, message:
                "\(count(omitted, "more finding")) not listed (\(parts.joined(separator: ", "))): "
                + "\(count(findings.count, "finding")) kept (--max-findings); the counts include them all"))
        }
        return out
    }
}
