import Glibc

/// An output file written crash-safely: the bytes go to a new file
/// `PATH.<unique>.incomplete` in the target's directory — created exclusively
/// (O_EXCL|O_NOFOLLOW), so nothing planted at that name, a symlink least of all, is
/// followed or overwritten — which is fsynced and renamed over PATH only by `commit()`,
/// and the directory is fsynced after. A reader therefore sees the old file or the whole
/// new one, never a torn one; a writer that fails removes its temporary file, and one
/// that dies leaves only that file. `-` writes standard output.
public final class OutputFile {
    public let path: String
    private let temporary: String?
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var committed = false

    private static let flushThreshold = 1 << 20

    public convenience init(path: String) throws(TraceError) {
        try self.init(path: path, uniqueNames: { String(UInt64.random(in: 0...UInt64.max), radix: 36) })
    }

    /// `uniqueNames` gives the middle part of temporary names (tests plant files there).
    init(path: String, uniqueNames: () -> String) throws(TraceError) {
        // A symlink is followed, so the link stays a link and its target is replaced.
        var target = path
        var st = stat()
        var hops = 0
        while target != "-" && lstat(target, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK && hops < 40 {
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(target, &buf, Int(PATH_MAX))
            guard n > 0 else { break }
            let link = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if link.hasPrefix("/") {
                target = link
            } else {
                let dir = target.lastIndex(of: "/").map { String(target[...$0]) } ?? ""
                target = dir + link
            }
            hops += 1
        }
        self.path = target
        if path == "-" {
            temporary = nil
            fd = 1
        } else if stat(target, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            // A device, FIFO or socket (/dev/null, /dev/stdout, a pipe): nothing to
            // rename over, so write to it in place.
            let d = open(target, O_WRONLY | O_CLOEXEC)
            if d < 0 {
                let why = String(cString: strerror(errno))
                throw TraceError(.io, file: path, "cannot open output: \(why)")
            }
            temporary = nil
            fd = d
        } else {
            var attempt = 0
            while true {
                let tmp = "\(target).\(getpid())-\(uniqueNames()).incomplete"
                let d = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
                if d >= 0 {
                    temporary = tmp
                    fd = d
                    break
                }
                attempt += 1
                if errno == EEXIST && attempt < 100 { continue }
                let why = String(cString: strerror(errno))
                throw TraceError(.io, file: path, "cannot create output: \(why) (check that the directory exists and is writable)")
            }
        }
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    deinit {
        // Not committed: leave no partial file under the real name.
        if !committed {
            if let temporary {
                close(fd)
                unlink(temporary)
            } else if fd > 2 {
                close(fd)
            }
        }
    }

    @inline(__always)
    public func write(_ bytes: some Sequence<UInt8>) throws(TraceError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    @inline(__always)
    public func write(byte: UInt8) throws(TraceError) {
        buffer.append(byte)
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    public func write(_ s: String) throws(TraceError) {
        try write(s.utf8)
    }

    /// Appends directly to the pending buffer; the caller flushes via `flushIfFull()`.
    @inline(__always)
    func append(_ byte: UInt8) { buffer.append(byte) }

    @inline(__always)
    func flushIfFull() throws(TraceError) {
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    public func flush() throws(TraceError) {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                throw TraceError(.io, file: path, "cannot write output: \(why)")
            }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, fsyncs and renames the file into place.
    public func commit() throws(TraceError) {
        try flush()
        guard let temporary else {
            if fd > 2 { close(fd) }
            committed = true
            return
        }
        if fsync(fd) != 0 {
            let why = String(cString: strerror(errno))
            throw TraceError(.io, file: path, "cannot fsync output: \(why)")
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let why = String(cString: strerror(errno))
            unlink(temporary)
            committed = true
            throw TraceError(.io, file: path, "cannot rename \(temporary) into place: \(why)")
        }
        committed = true
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// Writes `contents` to `path` crash-safely in one call.
    public static func write(_ contents: String, to path: String) throws(TraceError) {
        let f = try OutputFile(path: path)
        try f.write(contents)
        try f.commit()
    }
}
