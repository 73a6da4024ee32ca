import Glibc

/// A file (or standard input) read in large chunks into one growable buffer. Readers
/// ask for "at least n bytes" or "the next line" and parse straight out of the buffer;
/// memory is bounded by the largest record, never by the file's length.
final class ByteInput {
    let name: String
    private let fd: Int32
    private let ownsDescriptor: Bool
    private(set) var buffer: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    /// Unconsumed bytes are buffer[position..<end].
    var position = 0
    private(set) var end = 0
    private(set) var atEOF = false
    /// File offset of buffer[0], for error messages in binary traces.
    private(set) var bufferOffset: UInt64 = 0

    static let chunk = 1 << 20

    init(path: String) throws(TraceError) {
        name = path
        if path == "-" {
            fd = 0
            ownsDescriptor = false
        } else {
            let d = open(path, O_RDONLY | O_CLOEXEC)
            if d < 0 {
                let why = String(cString: strerror(errno))
                throw TraceError(.io, file: path, "cannot open trace: \(why) (check the path and permissions)")
            }
            var st = stat()
            if fstat(d, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                close(d)
                throw TraceError(.io, file: path, "is a directory, not a trace file (name the .pct or .pctb files in it)")
            }
            fd = d
            ownsDescriptor = true
        }
        capacity = Self.chunk * 2
        buffer = .allocate(capacity: capacity)
    }

    /// Reads from bytes already in memory.
    init(bytes: [UInt8], name: String) {
        self.name = name
        fd = -1
        ownsDescriptor = false
        capacity = max(bytes.count, 16)
        buffer = .allocate(capacity: capacity)
        buffer.initialize(from: bytes, count: bytes.count)
        end = bytes.count
        atEOF = true
    }

    deinit {
        if ownsDescriptor { close(fd) }
        buffer.deallocate()
    }

    var available: Int { end - position }

    /// Offset in the file of the next unconsumed byte.
    var fileOffset: UInt64 { bufferOffset + UInt64(position) }

    /// Makes at least `n` bytes available if the input has them; returns whether it does.
    @inline(__always)
    func ensure(_ n: Int) throws(TraceError) -> Bool {
        if end - position >= n { return true }
        return try refill(atLeast: n)
    }

    @inline(never)
    private func refill(atLeast n: Int) throws(TraceError) -> Bool {
        while end - position < n && !atEOF {
            // Move the unconsumed tail to the front, grow if one record needs more room.
            if position > 0 {
                let remaining = end - position
                if remaining > 0 { buffer.update(from: buffer + position, count: remaining) }
                bufferOffset += UInt64(position)
                end = remaining
                position = 0
            }
            if capacity - end < Self.chunk / 2 || capacity < n {
                // Grow by what one record needs, never by doubling: the buffer stays
                // within a chunk of the longest record (or line) read.
                let newCapacity = max(capacity, n) + Self.chunk
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
                bigger.update(from: buffer, count: end)
                buffer.deallocate()
                buffer = bigger
                capacity = newCapacity
            }
            let got = read(fd, buffer + end, capacity - end)
            if got < 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                throw TraceError(.io, file: name, "cannot read trace: \(why)")
            }
            if got == 0 { atEOF = true } else { end += got }
        }
        return end - position >= n
    }

    /// The next line without its terminator (and without a trailing CR), or nil at the
    /// end. The pointer is valid until the next call. A line longer than `maxLength`
    /// bytes comes back as its first `maxLength + 1` bytes (so the caller can say so and
    /// quote it) and is not consumed: no more than that of one line is ever held.
    @inline(__always)
    func nextLine(maxLength: Int) throws(TraceError) -> UnsafeBufferPointer<UInt8>? {
        // Fast path: the whole line is in the buffer.
        let available = end - position
        if available > 0, let nl = memchr(buffer + position, 0x0A, min(available, maxLength + 1)) {
            let lineEnd = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self))
            var count = lineEnd - position
            if count > 0 && buffer[lineEnd - 1] == 0x0D { count -= 1 }
            let line = UnsafeBufferPointer(start: buffer + position, count: count)
            position = lineEnd + 1
            return line
        }
        return try slowNextLine(maxLength: maxLength)
    }

    @inline(never)
    private func slowNextLine(maxLength: Int) throws(TraceError) -> UnsafeBufferPointer<UInt8>? {
        var scanFrom = position
        while true {
            let limit = min(end, position + maxLength + 1)
            if scanFrom < limit, let nl = memchr(buffer + scanFrom, 0x0A, limit - scanFrom) {
                let lineEnd = buffer.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                let line = UnsafeBufferPointer(start: buffer + position, count: trimCR(lineEnd) - position)
                position = lineEnd + 1
                return line
            }
            if end - position > maxLength {
                return UnsafeBufferPointer(start: buffer + position, count: maxLength + 1)
            }
            if atEOF {
                if position == end { return nil }
                let line = UnsafeBufferPointer(start: buffer + position, count: trimCR(end) - position)
                position = end
                return line
            }
            let scanned = end - position
            _ = try refill(atLeast: scanned + 1)
            scanFrom = position + scanned
        }
    }

    private func trimCR(_ lineEnd: Int) -> Int {
        lineEnd > position && buffer[lineEnd - 1] == 0x0D ? lineEnd - 1 : lineEnd
    }
}
