import Glibc

/// A worker's image as files (for command checkers): one file per range of the
/// layout, kept in the worker's slot folder and changed in place with positioned
/// writes. The folder a command sees holds a hard link to the file of each range
/// tracked at the cut, named after the range, and nothing else.
final class ImageFiles {
    let layout: ImageLayout
    private let store: String
    private let folder: String
    private var fds: [Int32] = []
    private var shown: [Int] = []

    init(layout: ImageLayout, slot: Int, rebuild: Bool) throws(CrashError) {
        self.layout = layout
        let slotFolder = layout.workDirectory + "/slot-\(slot)"
        store = slotFolder + "/ranges"
        folder = slotFolder + "/image"
        for f in [slotFolder, store, folder] where mkdir(f, 0o700) != 0 && errno != EEXIST {
            throw CrashError(.system, "cannot create \(f): \(errnoText())")
        }
        // Whatever an earlier worker of this slot showed is shown again below as needed.
        for r in layout.ranges { unlink(folder + "/" + r.fileName) }
        for (i, r) in layout.ranges.enumerated() {
            let path = store + "/\(i)"
            let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CrashError(.system, "cannot open \(path): \(errnoText())") }
            fds.append(fd)
            if rebuild { try Self.copyBase(layout.baseFiles[i], to: fd, length: r.length) }
        }
    }

    deinit { for fd in fds { close(fd) } }

    /// Shows the ranges `ranges` (by address) and returns the path a command is given:
    /// the range's file when one range is tracked, else the folder.
    func present(_ ranges: [Int]) throws(CrashError) -> String {
        if ranges != shown {
            for i in shown where !ranges.contains(i) { unlink(folder + "/" + layout.ranges[i].fileName) }
            for i in ranges where !shown.contains(i) {
                let path = folder + "/" + layout.ranges[i].fileName
                guard link(store + "/\(i)", path) == 0 || errno == EEXIST else {
                    throw CrashError(.system, "cannot link \(path): \(errnoText())")
                }
            }
            shown = ranges
        }
        return ranges.count == 1 ? folder + "/" + layout.ranges[ranges[0]].fileName : folder
    }

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
