import PowercutModel
import PowercutSymbolize
import PowercutOutput
import PowercutTrace

/// The timeline picture of an explanation, as SVG written by hand (and HTML around it).
///
/// Left to right: one column per relevant event, holding the state right after it (cut
/// N+1); a run of events that leave the chosen lines alone is one narrow `⋯` column.
/// Top to bottom: one row per cache line (or band of lines), and under a line one row per
/// run of chosen bytes. A cell is coloured by the worst state of its row's bytes. Above
/// the columns: the events (`#N` and what they are) and the ops as brackets. A thick red
/// line marks the cut where durability was promised; the bytes still at risk there are
/// outlined. A legend closes the picture.
public struct TimelinePicture {
    public let ex: Explanation

    public init(_ ex: Explanation) { self.ex = ex }

    // MARK: Geometry

    static let margin = 20.0
    static let eventWidth = 58.0
    static let gapWidth = 24.0
    static let lineRowHeight = 26.0
    static let runRowHeight = 22.0
    static let rowGap = 5.0
    static let charWidth = 7.3   // 12px monospace

    /// The palette: what a state looks like and what it means.
    public static func colour(_ s: CellState) -> String {
        switch s {
        case .untouched: "#ffffff"
        case .durable: "#a8d5a2"
        case .outside: "#9e9e9e"
        case .queued: "#3b7dd8"
        case .flushing: "#f59a3c"
        case .wc: "#8e5bb5"
        case .dirty: "#d7301f"
        }
    }

    static func textColour(_ s: CellState) -> String {
        switch s {
        case .untouched, .durable, .flushing: "#1b1b1b"
        default: "#ffffff"
        }
    }

    public static func meaning(_ s: CellState) -> String {
        switch s {
        case .untouched: "not written yet"
        case .durable: "survives a power failure"
        case .outside: "not declared pmem"
        case .queued: "in the controller's queue, no flush hint yet"
        case .flushing: "written back, not fenced yet"
        case .wc: "non-temporal store, not fenced yet"
        case .dirty: "in the cache, not written back"
        }
    }

    struct Column {
        var x: Double
        var width: Double
        var step: ExplainStep?
        var gap: (first: UInt64, last: UInt64, count: Int, elided: Bool)?
        var rows: [CellState]
        var mix: [[Int]]
    }

    func columns(startX: Double) -> [Column] {
        var x = startX
        var out: [Column] = []
        for item in ex.items {
            switch item {
            case .step(let s):
                out.append(Column(x: x, width: Self.eventWidth, step: s, gap: nil, rows: s.rows, mix: s.mix))
                x += Self.eventWidth
            case .gap(let f, let l, let n, let elided, let rows, let mix):
                out.append(Column(x: x, width: Self.gapWidth, step: nil, gap: (f, l, n, elided), rows: rows, mix: mix))
                x += Self.gapWidth
            }
        }
        return out
    }

    func rowHeight(_ r: ExplainRow) -> Double { r.isByteRun ? Self.runRowHeight : Self.lineRowHeight }

    /// Short words for an event, for the column header.
    static func label(_ e: Event, names: [String] = []) -> String {
        switch e.kind {
        case .store, .ntstore: "\(e.kind.keyword) 0x\(hex(e.address)) +\(e.size)"
        case .clwb, .clflushopt, .clflush: "\(e.kind.keyword) 0x\(hex(e.address))"
        case .opBegin: "op \(e.op) begin"
        case .opEnd: "op \(e.op) end"
        case .durable: "durable 0x\(hex(e.address)) +\(e.size)"
        default: e.kind.keyword
        }
    }

    /// The colour of an event's mark: the state it puts bytes in.
    static func markColour(_ k: EventKind) -> String {
        switch k {
        case .store: colour(.dirty)
        case .ntstore: colour(.wc)
        case .clwb, .clflushopt: colour(.flushing)
        case .clflush: "#2e7d32"
        case .sfence, .mfence, .fence: "#222222"
        case .wpqflush: colour(.queued)
        case .opBegin, .opEnd, .durable: "#777777"
        case .stackDefinition, .mark, .pmem, .pmemRelease: "#777777"
        }
    }

    // MARK: SVG

    public func svg() -> String {
        var w = SVGWriter()
        let m = Self.margin
        let labelWidth = max(130.0, Double(ex.rows.map { $0.label.count + 3 }.max() ?? 10) * Self.charWidth + 16)
        let gridX = m + labelWidth
        let cols = columns(startX: gridX)
        let gridWidth = (cols.last.map { $0.x + $0.width } ?? gridX) - gridX
        let titleY = m + 14
        // Slanted event labels (50°, 11px monospace): room above the grid and past its end.
        let longest = Double(cols.compactMap { c in c.step.map { Self.label($0.event).count } }.max() ?? 10)
        let labelRun = longest * 6.7
        let headerHeight = labelRun * 0.77 + 44
        let labelOverhang = labelRun * 0.65
        let ops = opBrackets(cols)
        let opBandHeight = ops.isEmpty ? 0.0 : 22.0
        let headerTop = titleY + 40
        let gridTop = headerTop + headerHeight + opBandHeight
        var rowY: [Double] = []
        var y = gridTop
        for r in ex.rows {
            rowY.append(y)
            y += rowHeight(r) + Self.rowGap
        }
        let gridBottom = y - Self.rowGap
        let axisY = gridBottom + 16
        let legendTop = axisY + 26
        let legend = legendEntries()
        let legendColumns = 2
        let legendWidth = (legend.map { Double(legendText($0).count) }.max() ?? 30) * 6.4 + 44
        var sub = "\(ex.file) · domain \(ex.domain) · \(ex.lineSize)-byte lines"
        if let p = ex.promise { sub += " · durability promised at \(p.place) (cut \(p.cut))" }
        let width = max(gridX + gridWidth + m + max(150, labelOverhang), m * 2 + Double(ex.title.count) * 8.4,
                        m * 2 + Double(sub.count) * 6.8, m * 2 + Double(legendColumns) * legendWidth, 640)
        let legendHeight = Double((legend.count + legendColumns - 1) / legendColumns) * 20 + 48
        let height = legendTop + legendHeight + m

        w.open(width: width, height: height)
        w.raw("<rect x=\"0\" y=\"0\" width=\"\(f(width))\" height=\"\(f(height))\" fill=\"#ffffff\"/>")

        // The promise column: a light band behind it.
        if let pc = cols.first(where: { $0.step?.isPromise == true }) {
            w.raw("<rect x=\"\(f(pc.x))\" y=\"\(f(headerTop + headerHeight - 22))\" width=\"\(f(pc.width))\" height=\"\(f(gridBottom - headerTop - headerHeight + 30))\" fill=\"#fde8e4\"/>")
        }

        // Title: what is explained, and the promise.
        w.text(m, titleY, ex.title, size: 14, weight: "bold", family: "sans-serif")
        w.text(m, titleY + 20, sub, size: 12, fill: "#555555", family: "sans-serif")

        // Header: the events, upright #N and a slanted description.
        w.text(m, headerTop + headerHeight - 8, "event →", size: 12, fill: "#555555", family: "sans-serif")
        for c in cols {
            let cx = c.x + c.width / 2
            let base = headerTop + headerHeight - 6
            if let s = c.step {
                let e = s.event
                w.raw("<g><title>\(xmlEscape("#\(e.seq) \(s.record)" + (s.notes.isEmpty ? "" : "\n" + s.notes.joined(separator: "\n"))))</title>")
                w.text(cx, base, "#\(e.seq)", size: 12, weight: s.isPromise ? "bold" : "normal", fill: s.isPromise ? "#b71c1c" : "#1b1b1b", anchor: "middle")
                // The event's colour as a small mark, then the slanted words.
                w.raw("<rect x=\"\(f(cx - 9))\" y=\"\(f(base - 24))\" width=\"18\" height=\"6\" rx=\"2\" fill=\"\(Self.markColour(e.kind))\"/>")
                let tx = cx + 3, ty = base - 30
                w.raw("<text x=\"\(f(tx))\" y=\"\(f(ty))\" font-family=\"monospace\" font-size=\"11\" fill=\"#222222\" transform=\"rotate(-50 \(f(tx)) \(f(ty)))\">\(xmlEscape(Self.label(e)))</text>")
                w.raw("</g>")
            } else if let g = c.gap {
                let what = "\(g.count) event\(g.count == 1 ? "" : "s") \(g.elided ? "left out" : "elsewhere")"
                w.raw("<g><title>\(xmlEscape("#\(g.first)-#\(g.last): \(what)"))</title>")
                w.text(cx, base, "⋯", size: 14, fill: "#777777", anchor: "middle")
                let tx = cx + 3, ty = base - 30
                w.raw("<text x=\"\(f(tx))\" y=\"\(f(ty))\" font-family=\"sans-serif\" font-size=\"11\" fill=\"#888888\" font-style=\"italic\" transform=\"rotate(-50 \(f(tx)) \(f(ty)))\">\(xmlEscape(g.elided ? "\(g.count) left out" : "\(g.count) elsewhere"))</text>")
                w.raw("</g>")
            }
        }

        // Ops as brackets between the header and the grid.
        for o in ops {
            let top = headerTop + headerHeight + 4
            w.raw("<g><title>\(xmlEscape(o.title))</title>")
            w.raw("<path d=\"M\(f(o.x0 + 2)) \(f(top + 12)) V\(f(top + 4)) H\(f(o.x1 - 2)) V\(f(top + 12))\" fill=\"none\" stroke=\"#777777\" stroke-width=\"1.5\"/>")
            let text = o.label
            let room = o.x1 - o.x0 - 8
            let shown = Double(text.count) * 6.6 <= room ? text : String(text.prefix(max(1, Int(room / 6.6))))
            w.raw("<rect x=\"\(f(o.x0 + 6))\" y=\"\(f(top - 4))\" width=\"\(f(Double(shown.count) * 6.6 + 6))\" height=\"14\" fill=\"#ffffff\"/>")
            w.text(o.x0 + 9, top + 7, shown, size: 11, fill: "#444444", family: "sans-serif")
            w.raw("</g>")
        }

        // Rows: label, then a cell per column.
        for (ri, r) in ex.rows.enumerated() {
            let top = rowY[ri], h = rowHeight(r)
            let lx = m + (r.isByteRun ? 18 : 0)
            if r.isByteRun {
                w.raw("<path d=\"M\(f(m + 6)) \(f(top - Self.rowGap - 2)) V\(f(top + h / 2)) H\(f(m + 14))\" fill=\"none\" stroke=\"#999999\"/>")
            }
            w.text(lx, top + h / 2 + 4, r.label, size: 12, weight: r.lost ? "bold" : "normal",
                   fill: r.lost ? "#b71c1c" : "#222222")
            var previous: CellState?
            for c in cols {
                let s = c.rows[ri]
                let gap = c.step == nil
                let stroke = s == .untouched ? "#cccccc" : "#ffffff"
                let when = c.step.map { "after #\($0.event.seq) (cut \($0.event.seq + 1))" } ?? "across #\(c.gap!.first)-#\(c.gap!.last)"
                w.raw("<rect x=\"\(f(c.x + 1))\" y=\"\(f(top))\" width=\"\(f(c.width - 2))\" height=\"\(f(h))\" rx=\"2\" fill=\"\(Self.colour(s))\" fill-opacity=\"\(gap ? "0.55" : "1")\" stroke=\"\(stroke)\"><title>\(xmlEscape("\(r.label) \(when): \(s.name)"))</title></rect>")
                // The state's name where it begins, so the picture reads without colour.
                if !gap, s != previous, s != .untouched {
                    let name = s == .outside ? "—" : s.name
                    w.text(c.x + 4, top + h / 2 + 4, name, size: 10, fill: Self.textColour(s))
                }
                if !gap { previous = s }
                // A strip along the bottom: the mix of states of the bytes written so far,
                // when there is more than one (the cell's colour is only the worst).
                if !gap, ri < c.mix.count {
                    let written = CellState.allCases.filter { $0 != .untouched && c.mix[ri][$0.rawValue] > 0 }
                    let total = written.reduce(0) { $0 + c.mix[ri][$1.rawValue] }
                    if written.count > 1 {
                        var sx = c.x + 2
                        let full = c.width - 4
                        w.raw("<rect x=\"\(f(c.x + 1))\" y=\"\(f(top + h - 7))\" width=\"\(f(c.width - 2))\" height=\"7\" fill=\"#ffffff\"/>")
                        for st in written {
                            let sw = full * Double(c.mix[ri][st.rawValue]) / Double(total)
                            w.raw("<rect x=\"\(f(sx))\" y=\"\(f(top + h - 6))\" width=\"\(f(sw))\" height=\"5\" fill=\"\(Self.colour(st))\"><title>\(xmlEscape("\(c.mix[ri][st.rawValue]) \(st.name)"))</title></rect>")
                            sx += sw
                        }
                    }
                }
                if let st = c.step, ri < st.touched.count, st.touched[ri] {
                    w.raw("<circle cx=\"\(f(c.x + c.width - 7))\" cy=\"\(f(top + 6))\" r=\"3\" fill=\"#111111\" stroke=\"#ffffff\" stroke-width=\"1\"/>")
                }
            }
        }

        // The promise: a thick line at the cut after the promise event, and the bytes
        // still at risk there outlined.
        if let pc = cols.first(where: { $0.step?.isPromise == true }), let p = ex.promise {
            let x = pc.x + pc.width
            w.raw("<line x1=\"\(f(x))\" y1=\"\(f(headerTop + headerHeight - 22))\" x2=\"\(f(x))\" y2=\"\(f(gridBottom + 8))\" stroke=\"#b71c1c\" stroke-width=\"3\"/>")
            w.text(x + 6, gridTop + 12, "cut \(p.cut): durability", size: 11, weight: "bold", fill: "#b71c1c", family: "sans-serif")
            w.text(x + 6, gridTop + 26, "promised here", size: 11, weight: "bold", fill: "#b71c1c", family: "sans-serif")
            for (ri, r) in ex.rows.enumerated() where r.lost {
                w.raw("<rect x=\"\(f(pc.x))\" y=\"\(f(rowY[ri] - 2))\" width=\"\(f(pc.width))\" height=\"\(f(rowHeight(r) + 4))\" rx=\"3\" fill=\"none\" stroke=\"#111111\" stroke-width=\"3.5\"><title>at risk where durability was promised</title></rect>")
            }
        } else if let p = ex.promise, p.event == nil, let last = cols.last {
            // Judged at the end of the trace: the line after the last column.
            let x = last.x + last.width
            w.raw("<line x1=\"\(f(x))\" y1=\"\(f(headerTop + headerHeight - 22))\" x2=\"\(f(x))\" y2=\"\(f(gridBottom + 8))\" stroke=\"#b71c1c\" stroke-width=\"3\"/>")
            w.text(x + 6, gridTop + 12, "cut \(p.cut): end of trace,", size: 11, weight: "bold", fill: "#b71c1c", family: "sans-serif")
            w.text(x + 6, gridTop + 26, "judged here", size: 11, weight: "bold", fill: "#b71c1c", family: "sans-serif")
            for (ri, r) in ex.rows.enumerated() where r.lost {
                w.raw("<rect x=\"\(f(last.x))\" y=\"\(f(rowY[ri] - 2))\" width=\"\(f(last.width))\" height=\"\(f(rowHeight(r) + 4))\" rx=\"3\" fill=\"none\" stroke=\"#111111\" stroke-width=\"3.5\"/>")
            }
        }

        // The cut axis.
        w.text(m, axisY + 4, "cut (power fails here) →", size: 11, fill: "#777777", family: "sans-serif")
        for c in cols {
            if let s = c.step {
                w.text(c.x + c.width / 2, axisY + 4, "\(s.event.seq + 1)", size: 10, fill: "#777777", anchor: "middle")
            }
        }

        // Legend.
        var ly = legendTop
        w.text(m, ly, "How to read this", size: 12, weight: "bold", family: "sans-serif")
        ly += 8
        w.text(m, ly + 14, "Each cell: the worst state of its row's bytes right after the event above it (a power failure there is cut N+1).",
               size: 11, fill: "#444444", family: "sans-serif")
        w.text(m, ly + 29, "⋯ stands for events that leave these bytes alone.", size: 11, fill: "#444444", family: "sans-serif")
        ly += 40
        let colWidth = legendWidth
        for (i, entry) in legend.enumerated() {
            let x = m + Double(i % legendColumns) * colWidth
            let yy = ly + Double(i / legendColumns) * 20
            switch entry {
            case .state(let s):
                w.raw("<rect x=\"\(f(x))\" y=\"\(f(yy))\" width=\"22\" height=\"14\" rx=\"2\" fill=\"\(Self.colour(s))\" stroke=\"\(s == .untouched ? "#cccccc" : "none")\"/>")
            case .lost:
                w.raw("<rect x=\"\(f(x + 1))\" y=\"\(f(yy))\" width=\"20\" height=\"14\" rx=\"2\" fill=\"none\" stroke=\"#111111\" stroke-width=\"3\"/>")
            case .promise:
                w.raw("<line x1=\"\(f(x + 11))\" y1=\"\(f(yy - 2))\" x2=\"\(f(x + 11))\" y2=\"\(f(yy + 16))\" stroke=\"#b71c1c\" stroke-width=\"3\"/>")
            case .touched:
                w.raw("<circle cx=\"\(f(x + 11))\" cy=\"\(f(yy + 7))\" r=\"3\" fill=\"#111111\"/>")
            case .mix:
                w.raw("<rect x=\"\(f(x))\" y=\"\(f(yy))\" width=\"22\" height=\"14\" rx=\"2\" fill=\"\(Self.colour(.dirty))\"/>")
                w.raw("<rect x=\"\(f(x + 1))\" y=\"\(f(yy + 8))\" width=\"20\" height=\"6\" fill=\"#ffffff\"/>")
                w.raw("<rect x=\"\(f(x + 1))\" y=\"\(f(yy + 9))\" width=\"14\" height=\"5\" fill=\"\(Self.colour(.durable))\"/>")
                w.raw("<rect x=\"\(f(x + 15))\" y=\"\(f(yy + 9))\" width=\"6\" height=\"5\" fill=\"\(Self.colour(.dirty))\"/>")
            }
            w.text(x + 30, yy + 11, legendText(entry), size: 11, family: "sans-serif")
        }
        w.close()
        return w.output
    }

    enum LegendEntry { case state(CellState), lost, promise, touched, mix }

    func legendText(_ e: LegendEntry) -> String {
        switch e {
        case .state(let s): s == .untouched ? Self.meaning(s) : "\(s.name) — \(Self.meaning(s))"
        case .lost: "still at risk where durability was promised"
        case .promise: "the cut where durability was promised"
        case .touched: "the event stored to or wrote back these bytes"
        case .mix: "strip: the share of the row's written bytes in each state"
        }
    }

    func legendEntries() -> [LegendEntry] {
        var seen = Set<CellState>()
        for item in ex.items {
            switch item {
            case .step(let s): seen.formUnion(s.rows)
            case .gap(_, _, _, _, let rows, _): seen.formUnion(rows)
            }
        }
        var out: [LegendEntry] = [.state(.durable), .state(.dirty), .state(.flushing), .state(.wc)]
        if ex.domain == .wpq || seen.contains(.queued) { out.append(.state(.queued)) }
        if seen.contains(.outside) { out.append(.state(.outside)) }
        out.append(.state(.untouched))
        out.append(.touched)
        out.append(.mix)
        if ex.promise != nil { out.append(.promise) }
        if ex.rows.contains(where: \.lost) { out.append(.lost) }
        return out
    }

    struct OpBracket {
        var x0: Double
        var x1: Double
        var label: String
        var title: String
    }

    /// Ops whose begin or end is a column, as brackets from begin to end.
    func opBrackets(_ cols: [Column]) -> [OpBracket] {
        var begins: [UInt64: (Double, Event)] = [:]
        var out: [OpBracket] = []
        let first = cols.first?.x ?? 0
        for c in cols {
            guard let e = c.step?.event else { continue }
            if e.kind == .opBegin { begins[e.op] = (c.x, e) }
            if e.kind == .opEnd {
                let x0 = begins[e.op]?.0 ?? first
                let name = ex.op?.id == e.op ? ex.op?.name : nil
                out.append(OpBracket(x0: x0, x1: c.x + c.width, label: "op \(e.op)" + (name.map { " \($0)" } ?? ""),
                                     title: "op \(e.op)" + (name.map { " (\($0))" } ?? "") + ": #\(begins[e.op]?.1.seq ?? 0)-#\(e.seq)"))
                begins[e.op] = nil
            }
        }
        let end = cols.last.map { $0.x + $0.width } ?? first
        for (id, (x0, e)) in begins {
            out.append(OpBracket(x0: x0, x1: end, label: "op \(id)", title: "op \(id): from #\(e.seq)"))
        }
        return out
    }

    // MARK: HTML

    /// The picture inline, the story and a table of the events and row states.
    public func html(story: String, frames: FrameResolver = FrameResolver()) -> String {
        var out = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>powercut explain: \(xmlEscape(ex.file))</title>
            <style>
            body { font-family: system-ui, sans-serif; margin: 24px; color: #1b1b1b; max-width: 1400px; }
            h1 { font-size: 18px; } h2 { font-size: 15px; margin-top: 28px; }
            pre { background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 12px; line-height: 1.35; }
            table { border-collapse: collapse; font: 12px monospace; }
            th, td { border: 1px solid #dddddd; padding: 3px 7px; text-align: left; vertical-align: top; }
            th { background: #f0f0f0; }
            tr.promise td { border-top: 3px solid #b71c1c; border-bottom: 3px solid #b71c1c; }
            td.lost { outline: 3px solid #111111; outline-offset: -3px; }
            .picture { overflow-x: auto; }

            """
        for s in CellState.allCases {
            out += "td.\(Self.cssClass(s)) { background: \(Self.colour(s)); color: \(Self.textColour(s)); }\n"
        }
        out += "</style>\n</head>\n<body>\n"
        out += "<h1>\(xmlEscape(ex.title))</h1>\n"
        out += "<p>\(xmlEscape(ex.file)) · domain \(ex.domain) · \(ex.lineSize)-byte lines"
        if let p = ex.promise { out += " · durability promised at \(xmlEscape(p.place)) (cut \(p.cut))" }
        out += "</p>\n"
        out += "<div class=\"picture\">\n" + svg() + "</div>\n"
        out += "<h2>The story</h2>\n<pre>\(xmlEscape(story))</pre>\n"
        out += "<h2>Event by event</h2>\n<table>\n<tr><th>#</th><th>cut</th><th>event</th><th>where</th>"
        for r in ex.rows { out += "<th>\(xmlEscape(r.label))</th>" }
        out += "</tr>\n"
        for item in ex.items {
            switch item {
            case .gap(let first, let last, let count, let elided, let rows, _):
                out += "<tr><td>#\(first)-#\(last)</td><td></td><td colspan=\"2\"><i>\(count) event\(count == 1 ? "" : "s") \(elided ? "left out" : "elsewhere")</i></td>"
                for s in rows { out += "<td class=\"\(Self.cssClass(s))\">\(s == .untouched ? "" : s.name)</td>" }
                out += "</tr>\n"
            case .step(let s):
                let inner = frames.frames(ex.stacks[s.event.stack] ?? [], modules: ex.modules).first
                let whereText = inner.map { "0x\(hex($0.address)): " + $0.text } ?? ""
                out += "<tr\(s.isPromise ? " class=\"promise\"" : "")><td>#\(s.event.seq)</td><td>\(s.event.seq + 1)</td>"
                out += "<td>\(xmlEscape(s.record))\(s.notes.isEmpty ? "" : "<br><i>" + xmlEscape(s.notes.joined(separator: "; ")) + "</i>")</td>"
                out += "<td>\(xmlEscape(whereText))</td>"
                for (ri, st) in s.rows.enumerated() {
                    let lost = s.isPromise && ex.rows[ri].lost ? " lost" : ""
                    out += "<td class=\"\(Self.cssClass(st))\(lost)\">\(st == .untouched ? "" : st.name)</td>"
                }
                out += "</tr>\n"
            }
        }
        out += "</table>\n</body>\n</html>\n"
        return out
    }

    static func cssClass(_ s: CellState) -> String {
        switch s {
        case .outside: "outside"
        default: s.name
        }
    }
}

/// Numbers in SVG: short, no exponent.
private func f(_ v: Double) -> String {
    let r = (v * 10).rounded() / 10
    return r == r.rounded() ? String(Int(r)) : String(r)
}

/// Accumulates SVG elements.
private struct SVGWriter {
    var output = ""

    mutating func open(width: Double, height: Double) {
        output += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(height))\" viewBox=\"0 0 \(f(width)) \(f(height))\" font-family=\"monospace\">\n"
    }

    mutating func close() { output += "</svg>\n" }

    mutating func raw(_ s: String) { output += s + "\n" }

    mutating func text(_ x: Double, _ y: Double, _ s: String, size: Int = 12, weight: String = "normal",
                       fill: String = "#1b1b1b", anchor: String = "start", family: String = "monospace") {
        var attrs = "x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(size)\""
        if family != "monospace" { attrs += " font-family=\"\(family)\"" }
        if weight != "normal" { attrs += " font-weight=\"\(weight)\"" }
        if fill != "#1b1b1b" { attrs += " fill=\"\(fill)\"" }
        if anchor != "start" { attrs += " text-anchor=\"\(anchor)\"" }
        output += "<text \(attrs)>\(xmlEscape(s))</text>\n"
    }
}
