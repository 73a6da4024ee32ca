import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// The story as text: a headline, then each relevant event with its stack and the states
/// of its cache lines after it, then the cut point where durability was promised, what
/// was still at risk there and the fix.
public struct ExplainTextReport {
    public var frames: FrameResolver
    /// At-risk ranges listed in full at the promise; the rest are counted.
    static let maxRiskLines = 16

    public init(frames: FrameResolver = FrameResolver()) {
        self.frames = frames
    }

    /// Looks every stack the story prints up at once.
    public func prefetch(_ ex: Explanation) {
        var ids = Set<UInt32>()
        for s in ex.steps where s.event.stack != 0 { ids.insert(s.event.stack) }
        for r in ex.atRisk where r.stack != 0 { ids.insert(r.stack) }
        frames.prefetch(stacks: ids.sorted().compactMap { ex.stacks[$0] }, modules: ex.modules)
    }

    public func render(_ ex: Explanation) -> String {
        prefetch(ex)
        var out = "== \(ex.file): \(ex.events) event\(ex.events == 1 ? "" : "s"), domain \(ex.domain), \(ex.lineSize)-byte lines\n"
        if ex.isEmpty, let o = ex.op {
            out += "\(o.label) has an empty destination (len=0): no bytes to follow\n"
            return out
        }
        if ex.isEmpty {
            out += "no error finding to explain (\(ex.warnings) warning\(ex.warnings == 1 ? "" : "s"), \(ex.notes) note\(ex.notes == 1 ? "" : "s")); "
            out += "choose bytes with --finding N, --byte ADDR or --op ID\n"
            return out
        }
        out += ex.title
        if let n = ex.findingNumber, let f = ex.finding {
            let headline = f.title
            // A byte or an op names the finding it is explained by on a line of its own.
            out += headline == ex.title ? "  [finding \(n) of \(ex.findingCount)]\n"
                                        : "\n   finding \(n) of \(ex.findingCount): \(headline)\n"
        } else {
            out += "\n"
        }
        out += "   following \(spansText(ex.chosen)) in \(linesText(ex.lines, ex.lineSize))"
        if let p = ex.promise { out += ", up to \(p.place)" }
        out += "\n"
        out += "   after each event: the states of its cache lines' bytes (cut N+1 = power failure right after #N); ◀ the bytes followed\n\n"

        for item in ex.items {
            switch item {
            case .gap(let first, let last, let count, let elided, _, _):
                let span = first == last ? "#\(first)" : "#\(first)-#\(last)"
                if elided {
                    out += "      … \(span): \(count) more event\(count == 1 ? "" : "s") left out (--limit 0 tells them all)\n"
                } else {
                    out += "      … \(span): \(count) event\(count == 1 ? "" : "s") elsewhere\n"
                }
            case .step(let s):
                out += step(s, ex)
            }
        }

        if ex.eventsAfterPromise > 0, let p = ex.promise?.event {
            let n = ex.eventsAfterPromise
            let span = n == 1 ? "#\(p + 1)" : "#\(p + 1)-#\(p + n)"
            out += "      … \(span): \(n) later event\(n == 1 ? "" : "s"), after the promise\n"
        }
        out += "\n" + conclusion(ex)
        return out
    }

    func step(_ s: ExplainStep, _ ex: Explanation) -> String {
        var head = "#\(s.event.seq)".padding(5) + " " + s.record
        if !s.notes.isEmpty { head += "  — " + s.notes.joined(separator: "; ") }
        var out = head + "\n"
        if s.event.stack != 0 {
            out += frames.stackText(ex.stacks[s.event.stack] ?? [], modules: ex.modules, indent: "         ")
        }
        for (line, runs) in s.lines {
            out += "      cut \(s.event.seq + 1)  line 0x\(hex(line)): " + runsText(runs) + "\n"
        }
        if s.moreLines > 0 { out += "      cut \(s.event.seq + 1)  … and \(s.moreLines) more line\(s.moreLines == 1 ? "" : "s")\n" }
        for v in s.verdicts { out += "      ⇒ \(v)\n" }
        return out
    }

    public func runsText(_ runs: [StateRun]) -> String {
        runs.map { r in
            let span = r.length == 1 ? "0x\(hex(r.start))" : "0x\(hex(r.start))-0x\(hex(r.start &+ (r.length - 1)))"
            var s = "\(span) \(r.state.name)"
            if let st = r.store, r.state.isAtRisk {
                s += r.lastStore.map { $0 != st ? " (#\(st)…#\($0))" : " (#\(st))" } ?? " (#\(st))"
            }
            if r.chosen { s += " ◀" }
            return s
        }.joined(separator: ", ")
    }

    func conclusion(_ ex: Explanation) -> String {
        var out = ""
        let risk = ex.atRisk.filter { $0.state != .durable }
        let bytes = risk.reduce(0) { $0 + $1.length }
        if let p = ex.promise {
            let when = p.event.map { _ in "At cut \(p.cut), right after \(p.place) — \(p.what) —" }
                ?? "At the end of the trace, cut \(p.cut) — \(p.what) —"
            let whenColon = String(when.dropLast(2)) + ":"
            if let f = ex.finding, f.rule == .redundantFlush || f.rule == .unnecessaryFlush || f.rule == .missingDrain {
                out += "\(whenColon)\n   \(f.rule.help)\n"
            } else if isOutOfBounds(ex), let o = ex.op {
                let range = "[0x\(hex(o.dst)), 0x\(hex(o.dst &+ o.length)))"
                out += "At \(p.place) (cut \(p.cut)), \(bytes) byte\(bytes == 1 ? " was" : "s were") stored outside \(o.label)'s destination \(range):\n"
            } else if risk.isEmpty {
                out += "\(whenColon) every byte followed is durable.\n"
            } else {
                out += "\(when) \(bytes) byte\(bytes == 1 ? " was" : "s were") still at risk:\n"
            }
        } else if risk.isEmpty {
            out += "At the end of the trace, cut \(ex.events): every byte followed is durable (no op promised anything about them).\n"
        } else {
            out += "At the end of the trace, cut \(ex.events), \(bytes) byte\(bytes == 1 ? " is" : "s are") still at risk (no op promised anything about them):\n"
        }
        let isFlushNote = ex.finding.map { $0.rule == .redundantFlush || $0.rule == .unnecessaryFlush } ?? false
        for r in risk.prefix(isFlushNote ? 0 : Self.maxRiskLines) {
            out += "   " + riskLine(r) + "\n"
            if r.stack != 0 {
                out += frames.stackText(ex.stacks[r.stack] ?? [], modules: ex.modules, indent: "      ")
            }
        }
        if !isFlushNote && risk.count > Self.maxRiskLines {
            let rest = risk.dropFirst(Self.maxRiskLines)
            let n = rest.reduce(0) { $0 + $1.length }
            out += "   … and \(rest.count) more range\(rest.count == 1 ? "" : "s") (\(n) byte\(n == 1 ? "" : "s"))\n"
        }
        for f in ex.fixes { out += "fix: \(f)\n" }
        return out
    }

    private func isOutOfBounds(_ ex: Explanation) -> Bool { ex.finding?.rule == .outOfBoundsStore }

    /// A range at risk, worded as the finding's own ranges are (its position only
    /// inside the destination).
    public func riskLine(_ r: ByteRange) -> String {
        var r = r
        if r.position == .outside { r.position = nil }
        return r.summary
    }

    func spansText(_ spans: [(start: UInt64, length: UInt64)]) -> String {
        let total = spans.reduce(0) { $0 + $1.length }
        let shown = spans.prefix(4).map { s in
            s.length == 1 ? "0x\(hex(s.start))" : "0x\(hex(s.start))-0x\(hex(s.start &+ (s.length - 1)))"
        }.joined(separator: ", ")
        return shown + (spans.count > 4 ? ", …" : "") + " (\(total) byte\(total == 1 ? "" : "s"))"
    }

    func linesText(_ lines: [UInt64], _ size: UInt64) -> String {
        if lines.count == 1 { return "line 0x\(hex(lines[0]))" }
        if lines.count <= 4 { return "lines " + lines.map { "0x\(hex($0))" }.joined(separator: ", ") }
        return "\(lines.count) lines, 0x\(hex(lines[0]))-0x\(hex(lines[lines.count - 1]))"
    }
}

fileprivate extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
