import PowercutSymbolize
#if canImport(Glibc)
import Glibc
#endif

/// The repository a report's paths are relative to (`--source-root DIR`, default the
/// current directory), so a code-scanning service can map them onto its checkout.
public struct SourceRoot: Sendable, Equatable {
    /// Absolute, without a trailing slash ("/" for the root itself).
    public var path: String

    /// `dir` relative to the current directory, or absolute.
    public init(_ dir: String) {
        path = SourceRoot.normalize(SourceRoot.absolute(dir))
    }

    /// The current directory.
    public static var current: SourceRoot { SourceRoot(".") }

    /// `path` relative to the root, or nil when it lies outside (relative paths are
    /// taken from the current directory).
    public func relative(_ file: String) -> String? {
        let abs = SourceRoot.normalize(SourceRoot.absolute(file))
        if path == "/" { return abs == "/" ? nil : String(abs.dropFirst()) }
        guard abs.hasPrefix(path + "/") else { return nil }
        return String(abs.dropFirst(path.count + 1))
    }

    /// Whether `file` lies under the root.
    public func contains(_ file: String) -> Bool { relative(file) != nil }

    /// The frame to point a reader at among a stack's frames (innermost first): the
    /// first that is not an inlined helper and whose source file is under the root;
    /// else the first with a source file that is not inlined; else the innermost.
    public func ownFrame(_ frames: [StackFrame]) -> Int? {
        guard !frames.isEmpty else { return nil }
        if let i = frames.firstIndex(where: { !$0.isInlined && $0.file.map(contains) == true }) { return i }
        if let i = frames.firstIndex(where: { !$0.isInlined && $0.file != nil }) { return i }
        return 0
    }

    /// "pc_store1 (primitives.h:40), inlined into pc_cached_small (primitives.h:54),
    /// inlined into pc_nocache_2016 (nocache.c)": the frames from the innermost down to
    /// `own`, when `own` is not the innermost (nil otherwise).
    public static func inlineChain(_ frames: [StackFrame], own: Int) -> String? {
        guard own > 0, own < frames.count else { return nil }
        return frames[0...own].map(\.text).joined(separator: ", inlined into ")
    }

    static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return p }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return p.isEmpty || p == "." ? cwd : cwd + "/" + p
    }

    /// Without `.` and `..` components and repeated slashes (no symbolic links resolved).
    static func normalize(_ p: String) -> String {
        var parts: [Substring] = []
        for c in p.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        return "/" + parts.joined(separator: "/")
    }
}
