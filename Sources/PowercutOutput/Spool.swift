#if canImport(Glibc)
import Glibc
#endif

/// Output kept aside until it can be placed: the bytes of a report part that must wait
/// for something printed before it (a per-cut series waits for its trace's report; a
/// whole report waits for the run to succeed). Up to `memoryLimit` bytes stay in
/// memory; past that they go to a temporary file in $TMPDIR (or /tmp), unlinked at
/// once, so memory stays bounded however long the output grows and nothing is left
/// behind. Written in order; fixed-size records may be patched in place (`patch`).
public final class Spool {
    /// Bytes written so far.
    public private(set) var count = 0
    /// The tail not yet in the file.
    private var buffer: [UInt8] = []
    private var fd: Int32 = -1
    /// Bytes in the file (the buffer follows them).
    private var fileCount = 0
    private let memoryLimit: Int

    public init(memoryLimit: Int = 1 << 20) {
        self.memoryLimit = memoryLimit
    }

    deinit { if fd >= 0 { close(fd) } }

    public func write(_ s: String) throws(SpoolError) {
        buffer.append(contentsOf: s.utf8)
        count += s.utf8.count
        if buffer.count >= memoryLimit { try spill() }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SpoolError) {
        buffer.append(contentsOf: bytes)
        count += bytes.count
        if buffer.count >= memoryLimit { try spill() }
    }

    /// Overwrites bytes written before, at `offset` (the range must lie in what was written).
    public func patch(at offset: Int, _ bytes: UnsafeRawBufferPointer) throws(SpoolError) {
        precondition(offset >= 0 && offset + bytes.count <= count)
        var done = 0
        if offset < fileCount {
            let n = min(bytes.count, fileCount - offset)
            try fileWrite(UnsafeRawBufferPointer(rebasing: bytes[0..<n]), at: offset)
            done = n
        }
        if done < bytes.count {
            let start = offset + done - fileCount
            for i in done..<bytes.count { buffer[start + i - done] = bytes[i] }
        }
    }

    /// Reads `n` bytes at `offset` into `out`.
    public func read(at offset: Int, into out: UnsafeMutableRawBufferPointer) throws(SpoolError) {
        precondition(offset >= 0 && offset + out.count <= count)
        var done = 0
        if offset < fileCount {
            let n = min(out.count, fileCount - offset)
            while done < n {
                let r = pread(fd, out.baseAddress! + done, n - done, off_t(offset + done))
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { throw SpoolError("cannot read back spooled output: \(Self.reason(r < 0 ? errno : EIO))") }
                done += r
            }
        }
        if done < out.count {
            let start = offset + done - fileCount
            buffer.withUnsafeBytes { b in
                out.baseAddress!.advanced(by: done).copyMemory(from: b.baseAddress! + start, byteCount: out.count - done)
            }
        }
    }

    /// Hands out every byte written, in order, a chunk at a time (errors of `body` and
    /// `SpoolError` pass through).
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if fileCount > 0 {
            var chunk = [UInt8](repeating: 0, count: min(fileCount, 1 << 20))
            var offset = 0
            while offset < fileCount {
                let n = min(chunk.count, fileCount - offset)
                try chunk.withUnsafeMutableBytes { p in
                    try read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: p[0..<n]))
                    try body(UnsafeRawBufferPointer(rebasing: p[0..<n]))
                }
                offset += n
            }
        }
        if !buffer.isEmpty { try buffer.withUnsafeBytes { try body($0) } }
    }

    /// Everything written, as a string (for tests and small outputs).
    public func text() throws -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        try forEachChunk { bytes.append(contentsOf: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func spill() throws(SpoolError) {
        if fd < 0 { try openFile() }
        let at = fileCount
        let failed: SpoolError? = buffer.withUnsafeBytes { p in
            do throws(SpoolError) { try fileWrite(p, at: at) } catch { return error }
            return nil
        }
        if let failed { throw failed }
        fileCount += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    private func fileWrite(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SpoolError) {
        var done = 0
        while done < bytes.count {
            let w = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if w < 0 && errno == EINTR { continue }
            if w < 0 { throw SpoolError("cannot spool output to \(Self.directory): \(Self.reason(errno))") }
            done += w
        }
    }

    private static var directory: String {
        if let t = getenv("TMPDIR"), t.pointee != 0 { return String(cString: t) }
        return "/tmp"
    }

    private static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    private func openFile() throws(SpoolError) {
        var template = Array((Self.directory + "/powercut-spool-XXXXXX").utf8CString)
        let d = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard d >= 0 else { throw SpoolError("cannot create a spool file in \(Self.directory): \(Self.reason(errno))") }
        _ = fcntl(d, F_SETFD, FD_CLOEXEC)
        // Nothing to clean up later, whatever happens to this process.
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        fd = d
    }
}

/// Spooled output could not be written or read back (a full or missing $TMPDIR).
public struct SpoolError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
