import Foundation

/// A lifted tree: the shared library built from the tree's own flushcache code and the
/// shims, and the account of which code is whose.
public struct LiftedKernel: Sendable {
    /// The shared library (absolute path).
    public var library: String
    public var directory: String
    public var tree: String
    public var layout: TreeLayout
    public var routines: [LiftedRoutine]
    public var flush: FlushInstruction
    public var patches: [String]
    /// Tree files a patch touched that the lift does not build.
    public var unbuiltPatchedFiles: [String]
    /// Empty stub headers written for the tree's includes.
    public var stubHeaders: [String]
    /// Symbols the lifted files call but do not define: given real bodies (memcpy,
    /// memset) or a trapping ud2 (anything else).
    public var libraryRoutines: [String]
    public var trappingStubs: [String]

    /// The routines a flushcache sweep applies to.
    public var sweptRoutines: [LiftedRoutine] { routines.filter(\.sweptByDefault) }

    /// The account of the lift, several lines: which code is the tree's and which the shim's.
    public var report: String {
        var s = "powercut kernel-lift: \(tree) -> \(library)\n"
        s += "  the tree's code, compiled unmodified\(patches.isEmpty ? "" : " after the patches below"):\n"
        let cFunctions = [layout.writeBack, layout.memcpyFlushcache].compactMap { $0 }
        s += "    \(layout.cFile)  (\(cFunctions.joined(separator: ", ")) and everything else in the file)\n"
        s += "    \(layout.coreFile)  (\(layout.core): opened with \(layout.entryMacro), returns with \(layout.returnStyle), called with \(layout.coreArguments) arguments)\n"
        for m in layout.headerMacros { s += "    \(m.file):\(m.line)  (assembler macro \(m.name), copied verbatim)\n" }
        for p in patches { s += "  patch applied to the copy (never to the tree): \(p)\n" }
        for f in unbuiltPatchedFiles { s += "  note: a patch touches \(f), which the lift does not build: that change is not verified\n" }
        s += "  the shim's code (\(directory)/shim):\n"
        s += "    memcpy: rep movsb (cached stores)\n"
        s += "    write-back: the tree's clwb() executes \(flush.rawValue)\n"
        s += "    cache line size: \(CPrelude.lineSize) bytes (boot_cpu_data.x86_clflush_size)\n"
        s += "    exception tables dropped: fault and machine-check paths are compiled but never run\n"
        let access = layout.accessOkArguments.isEmpty ? "" : " (the tree calls it with \(layout.accessOkArguments.map(String.init).joined(separator: " and ")) arguments)"
        s += "    stac, clac, might_fault: no-ops; access_ok: always true\(access)\n"
        s += "    \(stubHeaders.count) empty stub header\(stubHeaders.count == 1 ? "" : "s") for the tree's #include lines\n"
        if !libraryRoutines.isEmpty { s += "    \(libraryRoutines.joined(separator: ", ")) (called by compiled code): rep movsb/stosb\n" }
        if !trappingStubs.isEmpty {
            s += "    called but not defined by the lifted files, trapping (ud2) if ever run: \(trappingStubs.joined(separator: ", "))\n"
        }
        s += "  exported, each void f(void *dst, const void *src, size_t n):\n"
        let width = routines.map(\.symbol.count).max() ?? 0
        for r in routines {
            s += "    \(r.symbol.padding(toLength: width, withPad: " ", startingAt: 0))  -> \(r.treeFunction): \(r.summary)\n"
        }
        return s
    }

    /// The sweep commands to run on this library.
    public var sweepCommands: [String] {
        sweptRoutines.map { "powercut sweep --lib \(library) --symbol \($0.symbol)" }
    }
}
