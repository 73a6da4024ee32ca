import PowercutOutput
import PowercutTrace

/// Where a report goes as it is printed: an `OutputFile` (crash-safe: nothing under the
/// real name until `commit()`), or a `Spool` (standard output, copied out only when the
/// whole run succeeded, so a failure prints no partial report).
public protocol ReportOutput: AnyObject {
    func write(_ text: String) throws
    func write(bytes: UnsafeRawBufferPointer) throws
}

extension ReportOutput {
    /// Copies what a spool holds.
    public func write(_ spool: Spool) throws {
        try spool.forEachChunk { try write(bytes: $0) }
    }
}

extension Spool: ReportOutput {
    public func write(bytes: UnsafeRawBufferPointer) throws { try write(bytes) }
}

extension OutputFile: ReportOutput {
    public func write(bytes: UnsafeRawBufferPointer) throws { try write(bytes) }
}
