import Glibc

/// Why one image's bytes could be in persistent memory after a power failure — or why
/// they could not. Every image of every cut is an image of a `fences` cut, so looking
/// there answers for the whole trace.
public struct ImageExplanation: Sendable {
    /// The first checked cut with this image, and per line off the newest content the
    /// writes that persisted and those lost.
    public var cut: CutSummary?
    public var lines: [LineOutcome] = []
    /// When no cut has it: the cut that comes closest (fewest lines unexplained) and
    /// those lines, with their bytes in the image.
    public var closest: CutSummary?
    public var unexplained: [(address: UInt64, bytes: [UInt8])] = []

    /// The text for the user.
    public func wording(image: String) -> String {
        if let cut {
            var s = "\(image) is a crash image of \(cut.label)\n"
            if lines.isEmpty { s += "  every write before the cut persisted (the newest image)\n" }
            for line in lines {
                s += "  line \(hex(line.address)):\n"
                for w in line.persisted { s += "    persisted \(w.wording)\n" }
                for w in line.lost { s += "    lost      \(w.wording)\n" }
            }
            s += "  every other line holds its newest content\n"
            return s
        }
        var s = "\(image) is not a crash image of the trace: no cut leaves these bytes\n"
        if let closest {
            s += "  closest: \(closest.label), where \(unexplained.count) line\(unexplained.count == 1 ? "" : "s") hold bytes no choice of persisted writes gives:\n"
            for (a, bytes) in unexplained.prefix(16) {
                s += "    line \(hex(a)): \(bytes.prefix(16).map { String($0, radix: 16).leftPadded(2) }.joined(separator: " "))\(bytes.count > 16 ? " …" : "")\n"
            }
        }
        return s
    }
}

extension CrashSession {
    /// Finds the image at `imagePath` (the file when one range is tracked, else a folder
    /// with one file per range, as checkers get them) among the trace's images.
    public func explain(imagePath: String) throws -> ImageExplanation {
        var result = ImageExplanation()
        var image: [Int: [UInt8]]?
        var imageRanges: [Int]?
        var newest: ImageMemory?
        var best = Int.max
        _ = try replay { images, layout throws(CrashError) in
            if newest == nil { newest = try ImageMemory(layout: layout) }
            guard result.cut == nil, let memory = newest else { return }
            memory.begin(images)
            // The image is read as the cut's set of ranges; when the trace's set changes,
            // a cut whose ranges the image does not hold is not a candidate.
            if imageRanges != images.ranges {
                imageRanges = images.ranges
                do throws(CrashError) {
                    image = try Self.readImage(imagePath, layout: layout, ranges: images.ranges)
                } catch {
                    if layout.ranges.count == layout.headerRanges { throw error }
                    image = nil
                }
            }
            guard let image else { return }
            // Lines whose bytes vary at this cut are matched factor by factor; every other byte must be the newest.
            var values = [Int](repeating: 0, count: images.digits.count)
            var varying = Set<UInt64>()
            var unexplained: [(UInt64, [UInt8])] = []
            for (l, line) in images.lines.enumerated() {
                varying.insert(line.address)
                var ok = true
                for d in line.digits {
                    let f = images.digits[d]
                    var bytes: [UInt8] = []
                    for piece in f.pieces {
                        bytes += image[piece.range]![Int(piece.rangeOffset)..<Int(piece.rangeOffset) + piece.length]
                    }
                    guard let v = (0..<f.count).first(where: { f.content($0).elementsEqual(bytes) }) else { ok = false; break }
                    values[d] = v
                }
                // Bytes of the line outside its factors are fixed at the newest content.
                if ok {
                    for run in line.runs {
                        for i in 0..<run.length where !images.digits[line.digits].contains(where: { $0.offsets.contains(run.lineOffset + i) }) {
                            if image[run.range]![Int(run.rangeOffset) + i] != line.newest[run.lineOffset + i] { ok = false; break }
                        }
                    }
                }
                if !ok {
                    var bytes: [UInt8] = []
                    for run in line.runs { bytes += image[run.range]![Int(run.rangeOffset)..<Int(run.rangeOffset) + run.length] }
                    unexplained.append((line.address, bytes))
                }
                _ = l
            }
            // Every other line: the newest image of the cut, byte for byte.
            let lineSize = UInt64(layout.lineSize)
            for i in images.ranges {
                let r = layout.ranges[i]
                let region = memory.regions[i]
                var offset = 0
                while offset < region.count {
                    let n = min(region.count - offset, 1 << 16)
                    let same = image[i]!.withUnsafeBytes { memcmp($0.baseAddress! + offset, region.baseAddress! + offset, n) == 0 }
                    if !same {
                        for j in offset..<offset + n where image[i]![j] != region[j] {
                            let a = (r.base + UInt64(j)) & ~(lineSize - 1)
                            if !varying.contains(a) && unexplained.last?.0 != a {
                                let runs = layout.trackedRuns(line: a, active: images.ranges)
                                var bytes: [UInt8] = []
                                for run in runs where run.range == i { bytes += image[i]![Int(run.rangeOffset)..<Int(run.rangeOffset) + run.length] }
                                unexplained.append((a, bytes))
                            }
                        }
                    }
                    offset += n
                }
            }
            if unexplained.isEmpty {
                result.cut = CutSummary(images)
                result.lines = Self.outcome(images, values)
            } else if unexplained.count < best {
                best = unexplained.count
                result.closest = CutSummary(images)
                result.unexplained = unexplained.sorted { $0.0 < $1.0 }.map { (address: $0.0, bytes: $0.1) }
            }
        }
        return result
    }

    /// Reads an image of the ranges `ranges` (indices into the layout's ranges).
    static func readImage(_ path: String, layout: ImageLayout, ranges: [Int]) throws(CrashError) -> [Int: [UInt8]] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw CrashError(.usage, "--image \(quoted(path)): \(errnoText())") }
        let isFolder = (st.st_mode & S_IFMT) == S_IFDIR
        if !isFolder && ranges.count > 1 {
            throw CrashError(.usage, "--image \(quoted(path)): the trace tracks \(ranges.count) ranges, so an image is a folder with one file per range")
        }
        var out: [Int: [UInt8]] = [:]
        for i in ranges {
            let r = layout.ranges[i]
            let file = isFolder ? path + "/" + r.fileName : path
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw CrashError(.usage, "--image \(quoted(file)): cannot open: \(errnoText())") }
            defer { close(fd) }
            guard fstat(fd, &st) == 0, UInt64(st.st_size) == r.length else {
                throw CrashError(.badData, "--image \(quoted(file)) holds \(st.st_size) bytes; range \(r.name ?? hex(r.base)) holds \(r.length)")
            }
            var bytes = [UInt8](repeating: 0, count: Int(r.length))
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CrashError(.badData, "--image \(quoted(file)): cannot read: \(errnoText())") }
                done += n
            }
            out[i] = bytes
        }
        return out
    }
}
