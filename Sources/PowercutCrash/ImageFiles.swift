import Glibc

/// A worker's image as files (for command checkers): one file per range in the
/// worker's slot folder, changed in place with positioned writes.
final class ImageFiles {
    let layout: ImageLayout
    /// The path a command is given: the file when one range is tracked, else the folder.
    let imagePath: String
    private var fds: [Int32] = []

    init(layout: ImageLayout, slot: Int, rebuild: Bool) throws(CrashError) {
        self.layout = layout
        let folder = layout.workDirectory + "/slot-\(slot)"
        if mkdir(folder, 0o700) != 0 && errno != EEXIST {
            throw CrashError(.system, "cannot create \(folder): \(errnoText())")
        }
        imagePath = layout.ranges.count == 1 ? folder + "/" + layout.ranges[0].fileName : folder
        for (i, r) in layout.ranges.enumerated() {
            let path = folder + "/" + r.fileName
            let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CrashError(.system, "cannot open \(path): \(errnoText())") }
            fds.append(fd)
            if rebuild { try Self.copyBase(layout.baseFiles[i], to: fd, length: r.length) }
        }
    }

    deinit { for fd in fds { close(fd) } }

    static func copyBase(_ src: Int32, to dst: Int32, length: UInt64) throws(CrashError) {
        guard ftruncate(dst, 0) == 0, ftruncate(dst, fileOffset(length)) == 0 else {
            throw CrashError(.system, "cannot size an image file: \(errnoText())")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while offset < length {
            // Holes of the base file stay holes: a large, mostly empty pool costs nothing.
            let data = lseek(src, fileOffset(offset), 3 /* SEEK_DATA */)
            if data < 0 { break }
            offset = UInt64(data)
            if offset >= length { break }
            let n = buffer.withUnsafeMutableBytes { pread(src, $0.baseAddress, min($0.count, Int(length - offset)), fileOffset(offset)) }
            guard n > 0 else { break }
            if !buffer[0..<n].allSatisfy({ $0 == 0 }) {
                let w = buffer.withUnsafeBytes { pwrite(dst, $0.baseAddress, n, fileOffset(offset)) }
                guard w == n else { throw CrashError(.system, "cannot write an image file: \(errnoText())") }
            }
            offset += UInt64(n)
        }
    }

    func write(_ line: LineImage) {
        line.content.withUnsafeBytes { src in
            for run in line.runs {
                _ = pwrite(fds[run.range], src.baseAddress! + run.lineOffset, run.length, fileOffset(run.rangeOffset))
            }
        }
    }

    func write(_ factor: Factor, _ v: Int) {
        factor.contents.withUnsafeBytes { src in
            let start = v * factor.offsets.count
            for piece in factor.pieces {
                _ = pwrite(fds[piece.range], src.baseAddress! + start + piece.contentStart, piece.length, fileOffset(piece.rangeOffset))
            }
        }
    }
}
