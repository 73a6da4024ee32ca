import Glibc
import PowercutTrace

/// One tracked range of an image: a declared, non-volatile `pmem` range. A range
/// declared between events is tracked from the event that declares it until the event
/// that releases it; each declaration is a range of its own (an address range mapped
/// again after a release is a new range, starting from its content before the trace).
public struct ImageRange: Sendable {
    public var base: UInt64
    public var length: UInt64
    public var name: String?
    /// The file name of this range's image inside an image folder: its name, else its base.
    public var fileName: String
    /// Where its content before the trace came from, for the report.
    public var source: String
    /// The event that declares it (nil: the header).
    public var declaredAt: UInt64? = nil

    public var end: UInt64 { base &+ length }
    public func contains(_ a: UInt64) -> Bool { a >= base && a - base < length }
}

/// The memory an image covers and its content before the trace. The content before
/// the trace of each range is kept in a sparse file in a private work folder (zeros,
/// overlaid with the user's `--initial` file, overlaid with the trace's `init`
/// records): images start from a copy or a private mapping of it, and a line's old
/// bytes are read from it, so memory stays bounded by the lines written.
public final class ImageLayout: @unchecked Sendable {
    /// The header's ranges (by address), then the ranges declared between events, in
    /// the order of their declarations.
    public let ranges: [ImageRange]
    /// How many of `ranges` the header declares.
    public let headerRanges: Int
    public let lineSize: Int
    /// The private folder holding the base files (and the workers' image files).
    public let workDirectory: String
    /// One read-only descriptor per range's base file.
    let baseFiles: [Int32]

    /// `initial` maps a range (its name, or its base address as written in hex or
    /// decimal) to a file holding its content before the trace. `declared` lists the
    /// non-volatile ranges declared between events, in order, with the declaring event.
    public init(header: TraceHeader, declared: [(range: PmemRange, event: UInt64)] = [],
                initial: [(range: String, file: String)] = [], workRoot: String? = nil) throws(CrashError) {
        lineSize = Int(header.lineSize)
        var ranges: [ImageRange] = []
        var usedNames = Set<String>()
        func add(_ r: PmemRange, at event: UInt64?) {
            var fileName = r.name.map(Self.safeFileName) ?? hex(r.base)
            if fileName.isEmpty || usedNames.contains(fileName) { fileName = hex(r.base) }
            var n = 2
            while usedNames.contains(fileName) { fileName = hex(r.base) + "-\(n)"; n += 1 }
            usedNames.insert(fileName)
            ranges.append(ImageRange(base: r.base, length: r.length, name: r.name, fileName: fileName, source: "zeros",
                                     declaredAt: event))
        }
        for r in header.pmem.sorted(by: { $0.base < $1.base }) where !r.isVolatile && r.length > 0 { add(r, at: nil) }
        headerRanges = ranges.count
        for (r, event) in declared where !r.isVolatile && r.length > 0 { add(r, at: event) }
        guard !ranges.isEmpty else {
            throw CrashError(.badData, "the trace declares no non-volatile pmem range, so a crash image would be empty (add a `pmem BASE LEN` record)")
        }

        // Which file seeds which range.
        var seeds: [Int: String] = [:]
        for (spec, file) in initial {
            guard let i = Self.find(spec, in: ranges) else {
                throw CrashError(.usage, "--initial \(quoted(spec)): no tracked range has that name or base address (ranges: \(ranges.map { $0.name ?? hex($0.base) }.joined(separator: ", ")))")
            }
            if seeds[i] != nil { throw CrashError(.usage, "--initial names range \(ranges[i].name ?? hex(ranges[i].base)) twice") }
            seeds[i] = file
        }

        let root = workRoot ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        var template = Array((root + "/powercut-crash-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CrashError(.system, "cannot create a work folder in \(root): \(errnoText())")
        }
        workDirectory = String(cString: made)

        var files: [Int32] = []
        do throws(CrashError) {
            for (i, r) in ranges.enumerated() {
                let path = workDirectory + "/base-\(i)"
                let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw CrashError(.system, "cannot create \(path): \(errnoText())") }
                files.append(fd)
                guard ftruncate(fd, fileOffset(r.length)) == 0 else {
                    throw CrashError(.system, "cannot size the base image of range \(hex(r.base)) (\(r.length) bytes): \(errnoText())")
                }
                if let file = seeds[i] {
                    try Self.copy(file, into: fd, limit: r.length, range: r)
                    ranges[i].source = "file \(file)"
                }
            }
            for case .initial(let address, let data) in header.records where !data.isEmpty {
                // Every range holding it starts from it (one address range may be mapped more than once).
                let holders = ranges.indices.filter { ranges[$0].contains(address) && UInt64(data.count) <= ranges[$0].end &- address }
                guard !holders.isEmpty else {
                    throw CrashError(.badData, "init \(hex(address)) (\(data.count) bytes) is not inside one tracked pmem range")
                }
                for i in holders {
                    let off = fileOffset(address - ranges[i].base)
                    let n = data.withUnsafeBytes { pwrite(files[i], $0.baseAddress, $0.count, off) }
                    guard n == data.count else { throw CrashError(.system, "cannot write the base image: \(errnoText())") }
                    if !ranges[i].source.hasPrefix("init records") {
                        ranges[i].source = ranges[i].source == "zeros" ? "init records" : "init records over \(ranges[i].source)"
                    }
                }
            }
        } catch {
            for fd in files { close(fd) }
            Self.removeTree(workDirectory)
            throw error
        }
        self.ranges = ranges
        baseFiles = files
    }

    deinit {
        for fd in baseFiles { close(fd) }
        Self.removeTree(workDirectory)
    }

    public func basePath(_ i: Int) -> String { workDirectory + "/base-\(i)" }

    /// The tracked pieces of one line among the ranges `active` (indices into
    /// `ranges`; nil: all): (offset in line, length, range, offset in range).
    public func trackedRuns(line: UInt64, active: [Int]? = nil) -> [TrackedRun] {
        var out: [TrackedRun] = []
        let last = line &+ UInt64(lineSize - 1)
        for i in active ?? Array(ranges.indices) {
            let r = ranges[i]
            guard r.base <= last && r.end &- 1 >= line else { continue }
            let a = max(line, r.base), b = min(last, r.end &- 1)
            out.append(TrackedRun(lineOffset: Int(a - line), length: Int(b - a + 1), range: i, rangeOffset: a - r.base))
        }
        return out
    }

    /// A line's content before the trace (untracked bytes read as zero).
    func initialContent(line: UInt64, runs: [TrackedRun]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: lineSize)
        for run in runs {
            bytes.withUnsafeMutableBytes { p in
                _ = pread(baseFiles[run.range], p.baseAddress! + run.lineOffset, run.length, fileOffset(run.rangeOffset))
            }
        }
        return bytes
    }

    static func find(_ spec: String, in ranges: [ImageRange]) -> Int? {
        if let i = ranges.firstIndex(where: { $0.name == spec || $0.fileName == spec }) { return i }
        let v: UInt64? = spec.hasPrefix("0x") || spec.hasPrefix("0X") ? UInt64(spec.dropFirst(2), radix: 16) : UInt64(spec)
        guard let v else { return nil }
        return ranges.firstIndex { $0.base == v }
    }

    static func safeFileName(_ name: String) -> String {
        var s = ""
        for u in name.unicodeScalars {
            if u.isASCII && (u.properties.isAlphabetic || u.properties.numericType != nil || "-_.".unicodeScalars.contains(u)) {
                s.unicodeScalars.append(u)
            } else {
                s += "_"
            }
        }
        if s.hasPrefix(".") { s = "_" + s.dropFirst() }
        return String(s.prefix(100))
    }

    static func copy(_ file: String, into fd: Int32, limit: UInt64, range: ImageRange) throws(CrashError) {
        let src = open(file, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw CrashError(.usage, "--initial \(quoted(file)): cannot open: \(errnoText())") }
        defer { close(src) }
        var st = stat()
        guard fstat(src, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw CrashError(.usage, "--initial \(quoted(file)): not a regular file")
        }
        guard UInt64(st.st_size) <= limit else {
            throw CrashError(.badData, "--initial \(quoted(file)) holds \(st.st_size) bytes, more than range \(range.name ?? hex(range.base)) (\(limit) bytes)")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CrashError(.usage, "--initial \(quoted(file)): cannot read: \(errnoText())") }
            if n == 0 { break }
            // Zero blocks stay holes, so a large mostly-empty pool costs no disk.
            if !buffer[0..<n].allSatisfy({ $0 == 0 }) {
                let w = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, n, offset) }
                guard w == n else { throw CrashError(.system, "cannot write the base image: \(errnoText())") }
            }
            offset += off_t(n)
        }
    }

    /// Removes a folder this layout made (only plain files and folders inside it).
    static func removeTree(_ path: String) {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            var st = stat()
            if lstat(child, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
        }
        closedir(dir)
        rmdir(path)
    }
}

/// A tracked piece of a line.
public struct TrackedRun: Sendable, Equatable {
    public var lineOffset: Int
    public var length: Int
    public var range: Int
    public var rangeOffset: UInt64
}

@inline(__always) func fileOffset(_ v: UInt64) -> off_t { off_t(Int64(bitPattern: v)) }
