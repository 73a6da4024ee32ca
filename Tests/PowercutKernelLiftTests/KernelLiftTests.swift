import Foundation
@testable import PowercutKernelLift
import PowercutModel
import PowercutRecorder
import PowercutSweep
import Testing

/// A temporary directory removed at deinit.
final class Scratch {
    let root: String
    init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-kl-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }
    func path(_ rel: String) -> String { root + "/" + rel }
    deinit { try? FileManager.default.removeItem(atPath: root) }
}

/// Every file under `dir` with its contents: to show a tree was never written to.
func snapshot(_ dir: String) -> [String: Data] {
    var out: [String: Data] = [:]
    let e = FileManager.default.enumerator(atPath: dir)
    while let rel = e?.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue {
            out[rel] = FileManager.default.contents(atPath: dir + "/" + rel)
        }
    }
    return out
}

/// Records and replays each (dst offset, size) in this process, as a sweep worker does,
/// and returns the failing ones.
func failingCases(_ lifted: LiftedKernel, _ symbol: String, dst: [UInt64] = Array(0...63),
                  sizes: [UInt64] = Array(0...16)) throws -> Set<[Int]> {
    let grid = SweepGrid(dstOffsets: dst, srcOffsets: [0], sizes: sizes)
    var options = Harness.Options()
    options.contract = .flushcache
    options.budget = 2_000_000
    let runner = try CaseRunner(routine: .library(path: lifted.library, symbol: symbol), grid: grid, options: options,
                                replay: ReplayOptions())
    var failing = Set<[Int]>()
    for c in grid.cases {
        let r = runner.run(c)
        #expect(r.status == .clean || r.status == .failing, "\(c.label): \(r.status) \(r.message ?? "")")
        if r.status == .failing { failing.insert([Int(c.dstOffset), Int(c.size)]) }
    }
    return failing
}

func lift(_ tree: FakeTree, _ s: Scratch, patches: [String] = [], flush: FlushInstruction = .clflushopt) throws -> LiftedKernel {
    if !FileManager.default.fileExists(atPath: s.path("tree")) { try tree.write(to: s.path("tree")) }
    return try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), patches: patches, flush: flush, output: s.path("out")))
}

@Suite struct LayoutTests {
    @Test func the2017TreeIsReadOffItsFiles() throws {
        let s = Scratch()
        let k = try lift(.bug2017, s)
        #expect(k.layout.coreFile == "arch/x86/lib/copy_user_64.S")
        #expect(k.layout.core == "__copy_user_nocache" && k.layout.coreArguments == 4)
        #expect(k.layout.entryMacro == "ENTRY" && k.layout.returnStyle == "ret")
        #expect(k.layout.accessOkArguments == [3])
        #expect(k.layout.memcpyFlushcache == "memcpy_flushcache")
        #expect(k.layout.headerMacros.map(\.name) == ["ALIGN_DESTINATION"])
        #expect(k.layout.headerMacros.first?.file == "arch/x86/include/asm/asm.h")
        #expect(k.routines.map(\.symbol) == ["lifted_copy_user_flushcache", "lifted_memcpy_flushcache", "lifted_copy_user_nocache"])
        #expect(k.sweptRoutines.map(\.symbol) == ["lifted_copy_user_flushcache", "lifted_memcpy_flushcache"])
    }

    @Test func the2020TreeIsReadOffItsFiles() throws {
        let s = Scratch()
        let k = try lift(.fix2020, s)
        #expect(k.layout.coreFile == "arch/x86/lib/copy_user_64.S" && k.layout.coreArguments == 4)
        #expect(k.layout.entryMacro == "SYM_FUNC_START" && k.layout.returnStyle == "RET")
        #expect(k.layout.accessOkArguments == [2])
        #expect(k.layout.memcpyFlushcache == "__memcpy_flushcache")
        #expect(k.layout.headerMacros.isEmpty)
    }

    @Test func the2023TreeIsReadOffItsFiles() throws {
        let s = Scratch()
        let k = try lift(.core2023, s)
        #expect(k.layout.coreFile == "arch/x86/lib/copy_user_uncached_64.S")
        #expect(k.layout.coreArguments == 3)
        #expect(k.layout.entryMacro == "SYM_FUNC_START" && k.layout.returnStyle == "RET")
    }

    @Test func theReportSaysWhichCodeIsWhose() throws {
        let s = Scratch()
        let k = try lift(.bug2017, s, flush: .clflushopt)
        let r = k.report
        #expect(r.contains("arch/x86/lib/usercopy_64.c  (__copy_user_flushcache, memcpy_flushcache"))
        #expect(r.contains("arch/x86/lib/copy_user_64.S  (__copy_user_nocache: opened with ENTRY, returns with ret, called with 4 arguments)"))
        #expect(r.contains("arch/x86/include/asm/asm.h:4  (assembler macro ALIGN_DESTINATION, copied verbatim)"))
        #expect(r.contains("memcpy: rep movsb"))
        #expect(r.contains("the tree's clwb() executes clflushopt"))
        #expect(r.contains("cache line size: 64 bytes"))
        #expect(r.contains("exception tables dropped: fault and machine-check paths are compiled but never run"))
        #expect(try String(contentsOfFile: s.path("out/LIFT.txt"), encoding: .utf8) == r)
    }

    @Test func theTreeIsNeverWrittenTo() throws {
        let s = Scratch()
        try FakeTree.bug2017.write(to: s.path("tree"))
        let before = snapshot(s.path("tree"))
        _ = try lift(.bug2017, s, patches: [FakeTree.fixPatch])
        #expect(snapshot(s.path("tree")) == before)
        // The copy has the patch; the tree does not.
        let copied = try String(contentsOfFile: s.path("out/tree/arch/x86/lib/usercopy_64.c"), encoding: .utf8)
        #expect(copied.contains("write_back_lines(dst, size);"))
    }
}

@Suite(.serialized) struct SweepTests {
    /// Worked by hand from the behaviour: the first-line write-back of a short copy
    /// (n < 8) leaves the second line dirty exactly when the copy crosses the line:
    /// d mod 64 + n > 64. The 4-byte aligned n = 4 case never crosses (60 + 4 = 64).
    static var expected2017: Set<[Int]> {
        var e = Set<[Int]>()
        for d in 0..<64 { for n in 0...16 where n < 8 && d + n > 64 { e.insert([d, n]) } }
        return e
    }

    @Test func the2017BugIsFoundExactlyWhereItIs() throws {
        let s = Scratch()
        let k = try lift(.bug2017, s)
        #expect(Self.expected2017.count == 21)
        #expect(try failingCases(k, "lifted_copy_user_flushcache") == Self.expected2017)
        #expect(try failingCases(k, "lifted_memcpy_flushcache") == [])
    }

    @Test func the2017BugWithTheFixPatchIsClean() throws {
        let s = Scratch()
        let k = try lift(.bug2017, s, patches: [FakeTree.fixPatch])
        #expect(k.report.contains("patch applied to the copy (never to the tree): \(FakeTree.fixPatch)"))
        #expect(try failingCases(k, "lifted_copy_user_flushcache") == [])
    }

    @Test func theFixedTreesAreClean() throws {
        for tree in [FakeTree.fix2020, .core2023] {
            let s = Scratch()
            let k = try lift(tree, s, flush: .clwb)
            // Sizes around every step of both cores: short, one word, a 64-byte block and beyond.
            #expect(try failingCases(k, "lifted_copy_user_flushcache", sizes: Array(0...20) + [63, 64, 65, 71, 72, 129]) == [], "\(tree.corePath)")
            #expect(try failingCases(k, "lifted_memcpy_flushcache") == [], "\(tree.corePath)")
        }
    }

    @Test func theCoreAloneLeavesItsCachedPiecesToItsCaller() throws {
        // The 2023 core alone: a copy of 1 byte is one cached store, never written back.
        let s = Scratch()
        let k = try lift(.core2023, s)
        #expect(try failingCases(k, "lifted_copy_user_nocache", dst: [0], sizes: [1]) == [[0, 1]])
        // 8 bytes at an 8-byte aligned address are one movnti: durable after the drain.
        #expect(try failingCases(k, "lifted_copy_user_nocache", dst: [0], sizes: [8]) == [])
    }
}

@Suite struct LayoutErrorTests {
    func error(_ body: () throws -> Void) -> KernelLiftError? {
        do { try body() } catch let e as KernelLiftError { return e } catch { return nil }
        return nil
    }

    @Test func aTreeWithoutTheCFileIsOneLineNamingIt() throws {
        let s = Scratch()
        try FakeTree.fix2020.write(to: s.path("tree"))
        try FileManager.default.removeItem(atPath: s.path("tree/arch/x86/lib/usercopy_64.c"))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: s.path("out"))) }
        #expect(e?.exitStatus == 65)
        #expect(e?.description == "the tree has no arch/x86/lib/usercopy_64.c (the flushcache routines); is this a Linux source tree?")
        // No partial output.
        #expect(!FileManager.default.fileExists(atPath: s.path("out")))
    }

    @Test func aTreeWithoutACoreFileIsOneLineNamingBoth() throws {
        let s = Scratch()
        try FakeTree.fix2020.write(to: s.path("tree"))
        try FileManager.default.removeItem(atPath: s.path("tree/arch/x86/lib/copy_user_64.S"))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: s.path("out"))) }
        #expect(e?.exitStatus == 65)
        #expect(e?.description.contains("neither arch/x86/lib/copy_user_uncached_64.S nor arch/x86/lib/copy_user_64.S") == true)
    }

    @Test func aCoreTheCFileCallsButNoFileDefinesIsNamed() throws {
        let s = Scratch()
        try FakeTree.fix2020.write(to: s.path("tree"))
        let path = s.path("tree/arch/x86/lib/copy_user_64.S")
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "(__copy_user_nocache)", with: "(__copy_user_renamed)")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: s.path("out"))) }
        #expect(e?.exitStatus == 65)
        #expect(e?.description.hasPrefix("__copy_user_flushcache (arch/x86/lib/usercopy_64.c:") == true)
        #expect(e?.description.hasSuffix("calls no routine that arch/x86/lib/copy_user_64.S defines") == true)
    }

    @Test func aMissingHeaderMacroIsNamed() throws {
        let s = Scratch()
        try FakeTree.bug2017.write(to: s.path("tree"))
        try FileManager.default.removeItem(atPath: s.path("tree/arch/x86/include/asm/asm.h"))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: s.path("out"))) }
        #expect(e?.description == "arch/x86/lib/copy_user_64.S uses ALIGN_DESTINATION, which neither it nor the <asm/…> headers it includes define")
    }

    @Test func aPatchThatDoesNotApplyIsOneLine() throws {
        let s = Scratch()
        try FakeTree.fix2020.write(to: s.path("tree"))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), patches: [FakeTree.fixPatch], output: s.path("out"))) }
        #expect(e?.exitStatus == 65)
        // The path is quoted as every message quotes (at most 80 characters): a deep clone shortens it.
        #expect(e?.description.hasPrefix("patch \(quoted(FakeTree.fixPatch)) does not apply to ") == true)
        #expect(e?.description.contains("\n") == false)
    }

    @Test func theOutputMayNotBeInsideTheTree() throws {
        let s = Scratch()
        try FakeTree.fix2020.write(to: s.path("tree"))
        let before = snapshot(s.path("tree"))
        let e = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: s.path("tree/lift"))) }
        #expect(e?.exitStatus == 64)
        #expect(snapshot(s.path("tree")) == before)
        let notOurs = s.path("other")
        try FileManager.default.createDirectory(atPath: notOurs, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: notOurs + "/file"))
        let e2 = error { _ = try KernelLift.lift(KernelLiftRequest(tree: s.path("tree"), output: notOurs)) }
        #expect(e2?.exitStatus == 64)
        #expect(FileManager.default.fileExists(atPath: notOurs + "/file"))
    }

    @Test func aSecondLiftReplacesTheFirst() throws {
        let s = Scratch()
        _ = try lift(.fix2020, s)
        let k = try lift(.fix2020, s, flush: .clflush)
        #expect(k.flush == .clflush)
        #expect(FileManager.default.fileExists(atPath: k.library))
    }
}

/// Lifts the tree POWERCUT_KERNEL_TREE names, when set: a real kernel tree must lift
/// and its write-back wrapper must run cleanly on a few cases.
@Suite struct RealTreeTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["POWERCUT_KERNEL_TREE"] != nil))
    func aRealTreeLifts() throws {
        let tree = ProcessInfo.processInfo.environment["POWERCUT_KERNEL_TREE"]!
        let s = Scratch()
        let k = try KernelLift.lift(KernelLiftRequest(tree: tree, output: s.path("out")))
        #expect(!k.sweptRoutines.isEmpty)
        // The verdict depends on the tree; what must hold is that every case ran to a
        // verdict (failingCases expects each to be clean or failing, never an error).
        for r in k.sweptRoutines { _ = try failingCases(k, r.symbol, dst: Array(0...8), sizes: Array(0...16)) }
    }
}
