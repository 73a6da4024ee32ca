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

    public init(form: Form) {
        self.form = form
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
    /// space after it), then five right-aligned 10-wide counts. Formatted into a stack
    /// buffer: this runs once per event.
    private func add(_ cut: UInt64, _ c: CutCounts) {
        guard failure == nil else { return }
        failure = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 192) { buffer -> SpoolError? in
            var w = LineWriter(base: buffer.baseAddress!)
            switch form {
            case .text:
                let n = w.decimal(cut)
                w.spaces(max(1, 5 - n))
                w.column(c.dirty)
                w.column(c.flushing)
                w.column(c.wc)
                w.column(c.queued)
                w.column(c.atRisk)
                w.byte(0x0A)
            case .json:
                // An element of the trace's "cuts" array at JSONWriter's indentation there;
                // the first element's separator is the writer's (see JSONReport).
                if cut > 0 {
                    w.bytes(",\n        ")
                }
                w.bytes("{\"cut\":")
                _ = w.decimal(cut)
                w.bytes(",\"dirty\":")
                _ = w.decimal(c.dirty)
                w.bytes(",\"flushing\":")
                _ = w.decimal(c.flushing)
                w.bytes(",\"wc\":")
                _ = w.decimal(c.wc)
                w.bytes(",\"queued\":")
                _ = w.decimal(c.queued)
                w.byte(UInt8(ascii: "}"))
            }
            do throws(SpoolError) {
                try spool.write(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: w.count))
            } catch {
                return error
            }
            return nil
        }
    }
}

/// Writes ASCII into a buffer large enough for one row (at most 6 numbers of 20 digits
/// and their keys).
private struct LineWriter {
    let base: UnsafeMutablePointer<UInt8>
    var count = 0

    mutating func byte(_ b: UInt8) {
        base[count] = b
        count += 1
    }

    mutating func bytes(_ s: StaticString) {
        s.withUTF8Buffer { u in
            for b in u { byte(b) }
        }
    }

    mutating func spaces(_ n: Int) {
        for _ in 0..<n { byte(0x20) }
    }

    static func digits(_ v: UInt64) -> Int {
        var width = 1
        var x = v
        while x >= 10 {
            x /= 10
            width += 1
        }
        return width
    }

    /// Writes `v` in decimal; returns its width.
    @discardableResult
    mutating func decimal(_ v: UInt64) -> Int {
        let width = Self.digits(v)
        var x = v
        var i = count + width - 1
        repeat {
            base[i] = 0x30 + UInt8(x % 10)
            x /= 10
            i -= 1
        } while x > 0
        count += width
        return width
    }

    /// Right-aligned in 10 columns.
    mutating func column(_ v: UInt64) {
        spaces(max(0, 10 - Self.digits(v)))
        decimal(v)
    }
}
