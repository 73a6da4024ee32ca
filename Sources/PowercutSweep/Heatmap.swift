import PowercutOutput
import PowercutModel

/// The sweep as a picture: one panel per routine, destination offset across, size down,
/// each cell coloured by the bytes a power failure could lose in that case.
public struct Heatmap {
    public var grid: SweepGrid

    public init(grid: SweepGrid) { self.grid = grid }

    static let cellWidth = 9, maxCellHeight = 16
    static let palette: [(limit: UInt64, colour: String, label: String)] = [
        (0, "#e3f1df", "durable"),
        (1, "#fdd49e", "1 byte"),
        (3, "#fc8d59", "2-3"),
        (7, "#e34a33", "4-7"),
        (.max, "#99000d", "8+"),
    ]

    func colour(_ c: CaseResult?) -> String {
        guard let c else { return "#ffffff" }
        switch c.status {
        case .crashed: return "#000000"
        case .budget, .timeout, .error: return "#6b6b6b"
        case .clean: return Self.palette[0].colour
        case .failing:
            let b = c.bytesAtRisk
            if b == 0 { return "#fdd49e" }  // failing without bytes at risk (e.g. out of bounds)
            return Self.palette.first { b <= $0.limit && $0.limit > 0 }!.colour
        }
    }

    public func svg(_ results: [RoutineResult]) -> String {
        let sizes = grid.sizes, offsets = grid.dstOffsets
        // Rows: one per size; a gap where the sizes jump.
        let columns = min(3, max(1, results.count))
        let rows = (results.count + columns - 1) / columns
        let cellHeight = max(2, min(Self.maxCellHeight, (rows == 1 ? 900 : 540) / max(1, sizes.count)))
        let labelEvery: UInt64 = sizes.count <= 40 ? 1 : (sizes.count <= 140 ? 16 : 64)
        var rowY: [UInt64: Int] = [:]
        var y = 0
        var segmentStarts: [(UInt64, Int)] = []
        for (i, n) in sizes.enumerated() {
            if i > 0 && n != sizes[i - 1] + 1 { y += 8 }
            if i == 0 || n != sizes[i - 1] + 1 { segmentStarts.append((n, y)) }
            rowY[n] = y
            y += cellHeight
        }
        let panelHeight = y
        let panelWidth = offsets.count * Self.cellWidth
        let left = 56, gap = 40, titleHeight = 70, rowGap = 60
        let width = left + columns * (panelWidth + gap) + 10
        let height = titleHeight + rows * (panelHeight + rowGap) + 30
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="16" font-weight="bold">powercut sweep: bytes at risk at the drain point, by destination offset and size</text>
            <text x="\(left)" y="40" font-size="11" fill="#444">each cell is one call; green: every byte durable; red: bytes a power failure could lose (darker: more); black: crashed; grey: not recordable</text>

            """
        for (p, r) in results.enumerated() {
            let x0 = left + (p % columns) * (panelWidth + gap)
            let top = titleHeight + (p / columns) * (panelHeight + rowGap)
            var byCase: [SweepCase: CaseResult] = [:]
            for c in r.cases where c.srcOffset == grid.srcOffsets.first { byCase[c.sweepCase] = c }
            let title = r.isClean ? "\(r.routine): clean" : "\(r.routine): \(r.failing.count) failing"
            s += "<text x=\"\(x0)\" y=\"\(top - 12)\" font-size=\"12\" font-weight=\"bold\" fill=\"\(r.isClean ? "#2d6a2d" : "#b30000")\">\(xmlEscape(title))</text>\n"
            s += "<g shape-rendering=\"crispEdges\">\n"
            for n in sizes {
                for (i, d) in offsets.enumerated() {
                    let c = byCase[SweepCase(dstOffset: d, srcOffset: grid.srcOffsets.first ?? 0, size: n)]
                    let fill = colour(c)
                    var tip = "dst+\(d) n=\(n)"
                    if let c { tip += c.status == .clean ? ": durable" : ": \(count(c.bytesAtRisk, "byte")) at risk" + (c.message.map { " (\($0))" } ?? "") }
                    s += "<rect x=\"\(x0 + i * Self.cellWidth)\" y=\"\(top + rowY[n]!)\" width=\"\(Self.cellWidth)\" height=\"\(cellHeight)\" fill=\"\(fill)\"><title>\(xmlEscape(tip))</title></rect>"
                }
                s += "\n"
            }
            s += "</g>\n"
            // Axis ticks: offsets every 8 across, size segments down.
            for (i, d) in offsets.enumerated() where d % 8 == 0 {
                s += "<text x=\"\(x0 + i * Self.cellWidth + Self.cellWidth / 2)\" y=\"\(top + panelHeight + 12)\" font-size=\"9\" text-anchor=\"middle\" fill=\"#444\">\(d)</text>\n"
            }
            s += "<text x=\"\(x0 + panelWidth / 2)\" y=\"\(top + panelHeight + 26)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">dst offset (mod 64)</text>\n"
            if p % columns == 0 {
                for (n, yy) in segmentStarts {
                    s += "<text x=\"\(x0 - 4)\" y=\"\(top + yy + min(cellHeight, 10))\" font-size=\"9\" text-anchor=\"end\" fill=\"#444\">\(n)</text>\n"
                }
                let starts = Set(segmentStarts.map(\.0))
                for n in sizes where n % labelEvery == 0 && !starts.contains(n) {
                    s += "<text x=\"\(x0 - 4)\" y=\"\(top + rowY[n]! + min(cellHeight, 10))\" font-size=\"9\" text-anchor=\"end\" fill=\"#444\">\(n)</text>\n"
                }
                s += "<text x=\"12\" y=\"\(top + panelHeight / 2)\" font-size=\"10\" fill=\"#444\" transform=\"rotate(-90 12 \(top + panelHeight / 2))\" text-anchor=\"middle\">size n (bytes)</text>\n"
            }
        }
        // Legend.
        var lx = left
        let ly = titleHeight + rows * (panelHeight + rowGap) - 14
        for entry in Self.palette + [(0, "#000000", "crashed"), (0, "#6b6b6b", "not recordable")] {
            s += "<rect x=\"\(lx)\" y=\"\(ly)\" width=\"12\" height=\"12\" fill=\"\(entry.colour)\" stroke=\"#999\"/>"
            s += "<text x=\"\(lx + 16)\" y=\"\(ly + 10)\" font-size=\"11\">\(entry.label)</text>\n"
            lx += 24 + entry.label.count * 7
        }
        s += "</svg>\n"
        return s
    }
}
