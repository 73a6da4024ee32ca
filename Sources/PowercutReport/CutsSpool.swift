import PowercutModel
import PowercutOutput
import PowercutTrace

/// `--cuts` without holding the series: a `CutSeries` observer formats each cut point
/// as the replay reaches it (a text row or a JSON object, as `CutsReport` and
/// `JSONReport` print them) into a `Spool`, which the printer copies in place once the
/// trace's report is written. Memory stays flat; the rows wait in a temporary file.
public final class CutsSpool {
    public enum Form: Sendable { case text, json }

    public let form: Form
    public let spool = Spool()
    /// The first write that failed (the observer cannot throw); `check()` throws it.
    private var failure: SpoolError?
    private var line: [UInt8] = []

    public init(form: Form) {
        self.form = form
        line.reserveCapacity(128)
    }

    /// The observer to hand to the replayer.
    public func observer() -> CutSeries {
        CutSeries { [self] cut, counts in add(cut, counts) }
    }

    /// Throws the first write error, if any.
    public func check() throws(SpoolError) {
        if let failure { throw failure }
    }

    /// The column format of `CutsReport`: the cut number left-aligned in 5 (at least one
    /// space after it), then five right-aligned 10-wide counts.
    private func add(_ cut: UInt64, _ c: CutCounts) {
        guard failure == nil else { return }
        line.removeAll(keepingCapacity: true)
        switch form {
        case .text:
            let before = line.count
            appendDecimal(cut)
            let width = line.count - before
            for _ in 0..<max(1, 5 - width) { line.append(0x20) }
            appendColumn(c.dirty)
            appendColumn(c.flushing)
            appendColumn(c.wc)
            appendColumn(c.queued)
            appendColumn(c.atRisk)
            line.append(0x0A)
        case .json:
            // An element of the trace's "cuts" array, at JSONWriter's indentation there.
            // The first element's separator is the writer's (see JSONReport).
            if cut > 0 {
                line.append(UInt8(ascii: ","))
                line.append(0x0A)
                line.append(contentsOf: Self.jsonIndent)
            }
            line.append(contentsOf: Self.keyCut)
            appendDecimal(cut)
            line.append(contentsOf: Self.keyDirty)
            appendDecimal(c.dirty)
            line.append(contentsOf: Self.keyFlushing)
            appendDecimal(c.flushing)
            line.append(contentsOf: Self.keyWC)
            appendDecimal(c.wc)
            line.append(contentsOf: Self.keyQueued)
            appendDecimal(c.queued)
            line.append(UInt8(ascii: "}"))
        }
        failure = line.withUnsafeBytes { p in
            do throws(SpoolError) { try spool.write(p) } catch { return error }
            return nil
        }
    }

    static let jsonIndent = [UInt8](repeating: 0x20, count: 8)
    static let keyCut = Array("{\"cut\":".utf8)
    static let keyDirty = Array(",\"dirty\":".utf8)
    static let keyFlushing = Array(",\"flushing\":".utf8)
    static let keyWC = Array(",\"wc\":".utf8)
    static let keyQueued = Array(",\"queued\":".utf8)

    private func appendDecimal(_ v: UInt64) {
        let width = Self.digits(v)
        let start = line.count
        for _ in 0..<width { line.append(0x30) }
        var x = v
        var i = start + width - 1
        repeat {
            line[i] = 0x30 + UInt8(x % 10)
            x /= 10
            i -= 1
        } while x > 0
    }

    private static func digits(_ v: UInt64) -> Int {
        var width = 1
        var x = v
        while x >= 10 {
            x /= 10
            width += 1
        }
        return width
    }

    private func appendColumn(_ v: UInt64) {
        for _ in 0..<max(0, 10 - Self.digits(v)) { line.append(0x20) }
        appendDecimal(v)
    }
}
