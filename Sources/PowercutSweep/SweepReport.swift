import PowercutOutput
import PowercutModel

/// The sweep's human report: a table that says at a glance which routines strand
/// bytes, then for each failing routine its patterns of failing (dst offset, size).
public struct SweepReport {
    public var grid: SweepGrid
    public var describe: (String) -> String?

    public init(grid: SweepGrid, describe: @escaping (String) -> String? = { _ in nil }) {
        self.grid = grid
        self.describe = describe
    }

    public func header(routines: Int, domain: String, drain: String) -> String {
        "powercut sweep: \(count(routines, "routine")) × \(count(grid.count, "case")) "
            + "(dst offsets \(SweepGrid.format(grid.dstOffsets)), src offsets \(SweepGrid.format(grid.srcOffsets)), "
            + "sizes \(SweepGrid.format(grid.sizes))), domain \(domain), drain \(drain)\n"
    }

    public func render(_ results: [RoutineResult]) -> String {
        var out = "\n"
        let width = max(8, results.map(\.routine.count).max() ?? 8)
        for r in results {
            let name = r.routine.padding(width)
            let verdict: String
            if r.isClean {
                verdict = r.cases.count == 1 ? "clean   the 1 case durable" : "clean   all \(r.cases.count) cases durable"
            } else {
                let bytes = r.bytesAtRisk
                verdict = "FAIL    \(r.failing.count) of \(count(r.cases.count, "case")) \(r.failing.count == 1 ? "leaves" : "leave") bytes at risk (\(count(bytes, "byte")) in all)"
            }
            out += "  \(name)  \(verdict)"
            if let d = describe(r.routine) { out += "\n  \("".padding(width))  \(d)" }
            out += "\n"
        }
        for r in results where !r.isClean {
            out += "\n== \(r.routine): \(r.failing.count) failing case\(r.failing.count == 1 ? "" : "s") of \(r.cases.count)\n"
            let risk = r.atRisk
            if !risk.isEmpty {
                out += "   bytes at risk by position and state: "
                out += risk.keys.sorted().map { "\($0) \(risk[$0]!)" }.joined(separator: ", ") + "\n"
            }
            for p in r.patterns {
                out += "   pattern (\(p.cases) case\(p.cases == 1 ? "" : "s")): \(p.signature)\n"
                let shown = p.rows.prefix(8)
                for row in shown {
                    let dst = row.dst.count == 1 ? "dst+\(row.dst[0])" : "dst+\(row.dst.first!)-\(row.dst.last!)"
                    out += "      \(dst.padding(12)) n=\(SweepGrid.format(row.sizes))\n"
                }
                if p.rows.count > shown.count { out += "      … \(p.rows.count - shown.count) more rows (--format json lists them all)\n" }
            }
            if let first = r.failing.first {
                out += "   first failing case: \(first.sweepCase.label)\n"
                for line in first.verdict.prefix(6) { out += "      \(line)\n" }
                if let m = first.message { out += "      \(m)\n" }
            }
        }
        let failingRoutines = results.filter { !$0.isClean }.count
        let cases = results.reduce(0) { $0 + $1.cases.count }, failing = results.reduce(0) { $0 + $1.failing.count }
        out += "\npowercut sweep: \(count(results.count, "routine")), \(count(cases, "case")): "
        out += "\(failingRoutines) routine\(failingRoutines == 1 ? "" : "s") with failing cases, \(failing) failing case\(failing == 1 ? "" : "s")\n"
        return out
    }

    public func json(_ results: [RoutineResult], domain: String, drain: String) -> String {
        var w = JSONWriter(pretty: true)
        w.beginObject()
        w.beginObject("grid")
        w.string("dstOffsets", SweepGrid.format(grid.dstOffsets))
        w.string("srcOffsets", SweepGrid.format(grid.srcOffsets))
        w.string("sizes", SweepGrid.format(grid.sizes))
        w.number("cases", grid.count)
        w.string("domain", domain)
        w.string("drain", drain)
        w.endObject()
        w.beginArray("routines")
        for r in results {
            w.beginObject()
            w.string("routine", r.routine)
            w.string("contract", r.contract)
            w.number("cases", r.cases.count)
            w.number("failing", r.failing.count)
            w.number("bytesAtRisk", r.bytesAtRisk)
            w.beginObject("atRisk")
            for (k, v) in r.atRisk.sorted(by: { $0.key < $1.key }) { w.number(k, v) }
            w.endObject()
            w.beginArray("patterns")
            for p in r.patterns {
                w.beginObject()
                w.string("signature", p.signature)
                w.number("cases", p.cases)
                w.beginArray("rows")
                for row in p.rows {
                    w.raw(nil, "{\"dstOffsets\":\(JSONWriter.quote(SweepGrid.format(row.dst))),\"sizes\":\(JSONWriter.quote(SweepGrid.format(row.sizes)))}")
                }
                w.endArray()
                w.endObject()
            }
            w.endArray()
            w.beginArray("failingCases")
            for c in r.failing {
                w.beginObject()
                w.number("dstOffset", c.dstOffset)
                w.number("srcOffset", c.srcOffset)
                w.number("size", c.size)
                w.string("status", c.status.rawValue)
                w.string("message", c.message)
                w.number("bytesAtRisk", c.bytesAtRisk)
                w.beginObject("rules")
                for (k, v) in c.rules.sorted(by: { $0.key < $1.key }) { w.number(k, v) }
                w.endObject()
                w.raw("verdict", "[" + c.verdict.map(JSONWriter.quote).joined(separator: ",") + "]")
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        let failing = results.reduce(0) { $0 + $1.failing.count }
        w.beginObject("summary")
        w.number("routines", results.count)
        w.number("cases", results.reduce(0) { $0 + $1.cases.count })
        w.number("failing", failing)
        w.endObject()
        w.endObject()
        return w.output + "\n"
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
