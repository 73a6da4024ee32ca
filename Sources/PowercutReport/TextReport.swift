import PowercutModel
import PowercutSymbolize
import PowercutTrace
import PowercutTriage

/// The human report, laid out the way Valgrind's error reports are: a headline per
/// finding, then each byte range with the store that left it and that store's stack
/// (`at 0x…: frame` / `by 0x…: caller`), then what is missing; a summary line closes.
public struct TextReport {
    public var frames: FrameResolver
    /// Print notes (redundant or unnecessary flushes) in full; otherwise they are counted.
    public var showNotes: Bool

    public init(frames: FrameResolver = FrameResolver(), showNotes: Bool = true) {
        self.frames = frames
        self.showNotes = showNotes
    }

    public func render(_ trace: CheckedTrace) -> String {
        let r = trace.result
        var out = "== \(trace.file): \(count(r.events, "event")), \(count(r.opCount, "op")), domain \(r.domain), \(r.lineSize)-byte lines\n"
        for f in r.findings where showNotes || f.severity != .note {
            out += "\n" + render(f, in: trace)
        }
        for n in r.notices {
            out += "\n" + n.title + "\n"
        }
        var s = Summary()
        s.add(r)
        out += "\n== \(trace.file): \(verdict(r)) (\(count(s.errors, "error")), \(count(s.warnings, "warning")), \(count(s.notes, "note")))\n\n"
        return out
    }

    private func verdict(_ r: ReplayResult) -> String {
        if r.errors > 0 { return "FAIL" }
        if !r.checkedAnything { return "nothing checked" }
        if r.warnings > 0 { return "ok with warnings" }
        // Not a plain ok: some stored bytes were never looked at.
        return r.storesOutsidePmem > 0 ? "ok for the bytes in pmem only" : "ok"
    }

    public func render(_ f: Finding, in trace: CheckedTrace) -> String {
        var out = f.title + "\n"
        if let op = f.op, !f.isFlushNote {
            var s = "   \(op.label): dst=0x\(hex(op.dst)) len=\(op.length) contract=\(op.contract), #\(op.begin)"
            s += op.end.map { "-#\($0)" } ?? "-"
            out += s + "; judged at cut \(f.cut)\n"
        } else if f.rule != .missingDrain {
            out += "   judged at cut \(f.cut)\n"
        }
        if f.isFlushNote {
            out += stack(f.stack, in: trace, indent: "      ")
        }
        for r in f.ranges {
            out += "   " + r.summary + "\n"
            out += stack(r.stack, in: trace, indent: "      ")
            if r.missing != .none { out += "      missing: \(r.missingText)\n" }
        }
        if f.omittedRanges > 0 { out += "   … and \(count(f.omittedRanges, "more range"))\n" }
        return out
    }

    /// `at 0x…: where` then `by 0x…: where` lines.
    public func stack(_ stack: UInt32, in trace: CheckedTrace, indent: String) -> String {
        frames.stackText(trace.frames(stack), modules: trace.header.modules, indent: indent)
    }
}
