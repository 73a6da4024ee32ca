import Foundation

/// The fake kernel trees in Trees/ (see Trees/README.md): written for these tests, no
/// kernel code. Tests work on a copy, so that a test may change a file.
enum FakeTree: String, CaseIterable {
    case bug2017 = "bug-2017"
    case fix2020 = "fix-2020"
    case core2023 = "core-2023"

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Trees").path
    /// The one-line fix of bug-2017.
    static let fixPatch = directory + "/fix-2017-short-copies.patch"

    var path: String { Self.directory + "/" + rawValue }

    var corePath: String {
        self == .core2023 ? "arch/x86/lib/copy_user_uncached_64.S" : "arch/x86/lib/copy_user_64.S"
    }

    /// Copies the tree to `root`.
    func write(to root: String) throws {
        try FileManager.default.createDirectory(atPath: (root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path, toPath: root)
    }
}
