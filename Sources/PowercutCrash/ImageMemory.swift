import Glibc

/// One image in memory: each tracked range mapped privately from its base file (so a
/// large pool costs only the pages written), changed line by line.
public final class ImageMemory {
    public let layout: ImageLayout
    /// Base address and length of each range's mapping.
    public private(set) var regions: [UnsafeMutableRawBufferPointer] = []

    public init(layout: ImageLayout) throws(CrashError) {
        self.layout = layout
        for (i, r) in layout.ranges.enumerated() {
            let length = Int(r.length)
            let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, layout.baseFiles[i], 0)
            guard let p, p != MAP_FAILED else {
                for region in regions { munmap(region.baseAddress, region.count) }
                throw CrashError(.system, "cannot map the image of range \(hex(r.base)) (\(r.length) bytes): \(errnoText())")
            }
            regions.append(UnsafeMutableRawBufferPointer(start: p, count: length))
        }
    }

    deinit {
        for region in regions { munmap(region.baseAddress, region.count) }
    }

    /// Writes whole lines (the newest content of a cut's changed lines).
    @inline(__always)
    public func write(_ line: LineImage) {
        line.content.withUnsafeBytes { src in
            for run in line.runs {
                (regions[run.range].baseAddress! + Int(run.rangeOffset))
                    .copyMemory(from: src.baseAddress! + run.lineOffset, byteCount: run.length)
            }
        }
    }

    /// Writes content `v` of a digit.
    @inline(__always)
    public func write(_ factor: Factor, _ v: Int) {
        factor.contents.withUnsafeBytes { src in
            let start = v * factor.offsets.count
            for piece in factor.pieces {
                (regions[piece.range].baseAddress! + Int(piece.rangeOffset))
                    .copyMemory(from: src.baseAddress! + start + piece.contentStart, byteCount: piece.length)
            }
        }
    }

    /// Moves from the previous cut's last image to this cut's newest image.
    public func begin(_ images: CutImages) {
        for line in images.resets { write(line) }
    }

    /// Writes the digits the cursor changed.
    public func apply(_ cursor: ImageCursor) {
        for d in cursor.changed { write(cursor.images.digits[d], cursor.values[d]) }
    }

    /// A copy of range `i`'s bytes.
    public func bytes(_ i: Int) -> [UInt8] { Array(regions[i]) }
}
