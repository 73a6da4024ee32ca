import PowercutModel
import PowercutTrace

/// The human report, laid out the way Valgrind's error reports are: a headline per
/// finding, then each byte range with the store that left it and that store's stack
/// (`at 0x…: frame` / `by 0x…: caller`), then what is missing; a summary line closes.
public struct TextReport {
    public var symbolizer: Symbolizer
    /// Print notes (redundant or unnecessary flushes) in full; otherwise they are counted.
    public var showNotes: Bool

    public init(symbolizer: Symbolizer = ModuleOffsetSymbolizer(), showNotes: Bool = true) {
        self.symbolizer = symbolizer
        self.showNotes = showNotes
    }

    public func render(_ trace: CheckedTrace) -> String {
        let r = trace.result
        var out = "== \(trace.file): \(r.events) events, \(r.opCount) op\(r.opCount == 1 ? "" : "s"), domain \(r.domain), \(r.lineSize)-byte lines\n"
        for f in r.findings where showNotes || f.severity != .note {
            out += "\n" + render(f, in: trace)
        }
        var s = Summary()
        s.add(r)
        out += "\n== \(trace.file): \(verdict(r)) (\(s.errors) error\(s.errors == 1 ? "" : "s"), \(s.warnings) warning\(s.warnings == 1 ? "" : "s"), \(s.notes) note\(s.notes == 1 ? "" : "s"))\n\n"
        return out
    }

    private func verdict(_ r: ReplayResult) -> String {
        if r.errors > 0 { return "FAIL" }
        return r.warnings > 0 ? "ok with warnings" : "ok"
    }

    public func headline(_ f: Finding) -> String {
        let opText = f.op.map { opLabel($0) } ?? ""
        let at = f.event.map { "#\($0)" } ?? "the end of the trace"
        switch f.rule {
        case .notDurable:
            if let op = f.op {
                if f.event == nil {
                    return "\(f.bytes) byte\(f.bytes == 1 ? "" : "s") of \(opText) not durable at the end of the trace (no drain point)"
                }
                let point = op.contract == .persist ? "its return" : "its drain point"
                return "\(f.bytes) byte\(f.bytes == 1 ? "" : "s") of \(opText) not durable at \(point), \(at)"
            }
            return "\(f.bytes) byte\(f.bytes == 1 ? "" : "s") not durable at the durable assertion \(at)"
        case .dirtyAtReturn:
            return "\(opText) returned at \(at) with \(f.bytes) byte\(f.bytes == 1 ? "" : "s") dirty in the cache"
        case .outOfBoundsStore:
            return "\(opText) stored \(f.bytes) byte\(f.bytes == 1 ? "" : "s") outside its destination at \(at)"
        case .missingDrain:
            return "\(opText) has no fence after it before the trace ends; its range is judged at the end"
        case .redundantFlush:
            return "\(f.eventKind?.keyword ?? "write-back") \(at) of line 0x\(hex(f.line ?? 0)), which has no dirty byte"
        case .unnecessaryFlush:
            return "\(f.eventKind?.keyword ?? "write-back") \(at) of line 0x\(hex(f.line ?? 0)) is unnecessary in this domain or range"
        }
    }

    public func opLabel(_ op: OpInfo) -> String {
        "op \(op.id)" + (op.name.map { " (\($0))" } ?? "")
    }

    public func render(_ f: Finding, in trace: CheckedTrace) -> String {
        var out = "\(f.severity): \(f.rule.rawValue): \(headline(f))\n"
        if let op = f.op, f.rule != .redundantFlush && f.rule != .unnecessaryFlush {
            var s = "   \(opLabel(op)): dst=0x\(hex(op.dst)) len=\(op.length) contract=\(op.contract), #\(op.begin)"
            s += op.end.map { "-#\($0)" } ?? "-"
            out += s + "; judged at cut \(f.cut)\n"
        } else if f.rule != .missingDrain {
            out += "   judged at cut \(f.cut)\n"
        }
        if f.rule == .redundantFlush || f.rule == .unnecessaryFlush {
            out += frames(f.stack, in: trace, indent: "      ")
        }
        for r in f.ranges {
            out += "   " + rangeLine(r) + "\n"
            out += frames(r.stack, in: trace, indent: "      ")
            if r.missing != .none { out += "      missing: \(r.missingText)\n" }
        }
        if f.omittedRanges > 0 { out += "   … and \(f.omittedRanges) more range\(f.omittedRanges == 1 ? "" : "s")\n" }
        return out
    }

    public func rangeLine(_ r: ByteRange) -> String {
        let span = r.length == 1 ? "0x\(hex(r.start))" : "0x\(hex(r.start))-0x\(hex(r.start + r.length - 1))"
        let pos = r.position.map { ", \($0.rawValue)" } ?? ""
        var s = "\(span) (\(r.length) byte\(r.length == 1 ? "" : "s")\(pos)): \(r.state.rawValue)"
        if let e = r.event { s += ", from \(r.nonTemporal ? "ntstore" : "store") #\(e)" }
        if let v = r.via {
            s += r.state == .flushing ? ", written back by #\(v)" : ", queued by #\(v)"
        }
        return s
    }

    /// `at 0x…: where` then `by 0x…: where` lines.
    public func frames(_ stack: UInt32, in trace: CheckedTrace, indent: String) -> String {
        var out = ""
        for (i, ip) in trace.frames(stack).enumerated() {
            let place = symbolizer.describe(ip, modules: trace.header.modules) ?? "???"
            out += "\(indent)\(i == 0 ? "at" : "by") 0x\(hex(ip)): \(place)\n"
        }
        return out
    }
}
