import CPowercutSubjects
import Foundation

/// What to lift: a Linux source tree, patches to apply to the copy, the write-back
/// instruction, and where to build.
public struct KernelLiftRequest: Sendable {
    public var tree: String
    public var patches: [String]
    public var flush: FlushInstruction
    public var output: String

    public init(tree: String, patches: [String] = [], flush: FlushInstruction = KernelLift.defaultFlush, output: String) {
        self.tree = tree
        self.patches = patches
        self.flush = flush
        self.output = output
    }
}

public enum KernelLift {
    /// The write-back instruction the CPU offers (clwb, else clflushopt, else clflush),
    /// or POWERCUT_WRITEBACK's choice: the same rule as the built-in subjects.
    public static var defaultFlush: FlushInstruction {
        FlushInstruction(rawValue: String(cString: powercut_subject_writeback_name())) ?? .clflush
    }

    static let marker = ".powercut-kernel-lift"
    static let libraryName = "libkernel-lift.so"
    /// Source files larger than this are not kernel sources kernel-lift knows.
    static let maxFileSize = 4 << 20

    /// Copies the tree's flushcache files into `request.output`, applies the patches to
    /// the copy, writes the shims, and builds the library. Never writes into the tree.
    public static func lift(_ request: KernelLiftRequest) throws(KernelLiftError) -> LiftedKernel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: request.tree, isDirectory: &isDir), isDir.boolValue else {
            throw KernelLiftError(.usage, "--tree \(quoted(request.tree)): no such directory")
        }
        let tree = URL(fileURLWithPath: request.tree).resolvingSymlinksInPath().standardizedFileURL.path
        for p in request.patches where !fm.isReadableFile(atPath: p) {
            throw KernelLiftError(.usage, "--patch \(quoted(p)): no such readable file")
        }
        let (dir, created) = try prepareOutput(request.output, tree: tree)
        do {
            return try build(request, tree: tree, in: dir)
        } catch {
            // No partial output: a directory this lift made goes, one it reused is left empty.
            if created {
                try? fm.removeItem(atPath: dir)
            } else {
                for e in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] { try? fm.removeItem(atPath: dir + "/" + e) }
            }
            throw error
        }
    }

    static func build(_ request: KernelLiftRequest, tree: String, in dir: String) throws(KernelLiftError) -> LiftedKernel {
        let fm = FileManager.default
        let copy = dir + "/tree", shim = dir + "/shim", build = dir + "/build"
        for d in [copy, shim + "/include", build] { try makeDirectory(d) }

        // 1. Copy out of the tree what the lift may build, and what the patches touch.
        for rel in [TreeLayout.cPath] + TreeLayout.corePaths { try copyOut(rel, from: tree, to: copy) }
        var patched: [String] = []
        for p in request.patches {
            let text = try readFile(p, what: "patch")
            for rel in patchTargets(text) {
                try copyOut(rel, from: tree, to: copy)
                if !patched.contains(rel) { patched.append(rel) }
            }
        }
        // 2. Apply the patches to the copy.
        for p in request.patches {
            let abs = URL(fileURLWithPath: p).standardizedFileURL.path
            let r = try Tool.run("patch", ["-p1", "--batch", "--forward", "--no-backup-if-mismatch", "--reject-file=-", "-d", copy, "-i", abs])
            guard r.status == 0 else {
                throw KernelLiftError(.layout, "patch \(quoted(p)) does not apply to \(tree): \(Tool.firstError(r.output))")
            }
        }
        // 3. Read the layout off the (patched) copy; headers come from the tree unless patched.
        let layout = try TreeLayout.detect { (rel: String) throws(KernelLiftError) -> String? in
            if fm.fileExists(atPath: copy + "/" + rel) { return try readFile(copy + "/" + rel, what: rel) }
            if fm.fileExists(atPath: tree + "/" + rel) { return try readFile(tree + "/" + rel, what: rel) }
            return nil
        }
        // Only the two built files stay in the copy (plus whatever the patches touched).
        for rel in TreeLayout.corePaths where rel != layout.coreFile && !patched.contains(rel) {
            try? fm.removeItem(atPath: copy + "/" + rel)
        }
        let built = [layout.cFile, layout.coreFile] + layout.headerMacros.map(\.file)
        let unbuilt = patched.filter { !built.contains($0) }

        // 4. The shims.
        var stubs: [String] = []
        let cText = try readFile(copy + "/" + layout.cFile, what: layout.cFile)
        let sText = try readFile(copy + "/" + layout.coreFile, what: layout.coreFile)
        for (file, text, asm) in [(layout.cFile, cText, false), (layout.coreFile, sText, true)] {
            for inc in SourceText(text, assembler: asm).includes() {
                guard validIncludePath(inc.path) else {
                    throw KernelLiftError(.layout, "\(file):\(inc.line): #include \(quoted(inc.path)) is not a header path kernel-lift can stub")
                }
                if !stubs.contains(inc.path) { stubs.append(inc.path) }
            }
        }
        for h in stubs {
            let path = shim + "/include/" + h
            try makeDirectory((path as NSString).deletingLastPathComponent)
            try write("/* powercut kernel-lift: empty stub for <\(h)> (the shim) */\n", to: path)
        }
        try write(CPrelude.text, to: shim + "/prelude.h")
        try write(AssemblerPrelude.text, to: shim + "/asm-prelude.h")
        try write(Wrappers.source(for: layout), to: shim + "/wrappers.c")
        var macroFile: String?
        if !layout.headerMacros.isEmpty {
            var t = "/* Assembler macros the tree's \(layout.coreFile) takes from its headers: THE TREE'S CODE, copied verbatim. */\n"
            for m in layout.headerMacros { t += "/* \(m.file):\(m.line) */\n" + m.text }
            macroFile = copy + "/powercut-header-macros.h"
            try write(t, to: macroFile!)
        }

        // 5. Build.
        let include = ["-nostdinc", "-I", shim + "/include"]
        let cFlags = ["-std=gnu11", "-O2", "-fPIC", "-fvisibility=hidden", "-fno-strict-aliasing", "-fno-common", "-fno-builtin",
                      "-Wa,--noexecstack", "-w"]
        let cObject = build + "/" + objectName(layout.cFile), sObject = build + "/" + objectName(layout.coreFile)
        try compile(include + cFlags + ["-include", shim + "/prelude.h", "-D" + request.flush.define, "-c", copy + "/" + layout.cFile, "-o", cObject],
                    what: layout.cFile)
        var asmFlags = include + ["-fPIC", "-Wa,--noexecstack", "-include", shim + "/asm-prelude.h"]
        if let macroFile { asmFlags += ["-include", macroFile] }
        try compile(asmFlags + ["-c", copy + "/" + layout.coreFile, "-o", sObject], what: layout.coreFile)
        let wObject = build + "/wrappers.o"
        try compile(["-nostdinc", "-std=gnu11", "-O2", "-fPIC", "-fvisibility=hidden", "-Wa,--noexecstack", "-c", shim + "/wrappers.c", "-o", wObject],
                    what: "shim/wrappers.c")
        let objects = [cObject, sObject, wObject]
        let missing = try undefinedSymbols(objects)
        let runtime = shim + "/runtime.S", rObject = build + "/runtime.o"
        try write(Runtime.source(for: missing), to: runtime)
        try compile(["-fPIC", "-Wa,--noexecstack", "-c", runtime, "-o", rObject], what: "shim/runtime.S")
        let library = dir + "/" + libraryName, partial = dir + "/." + libraryName + ".incomplete"
        try? fm.removeItem(atPath: partial)
        try compile(["-shared", "-nostdlib", "-Wl,-z,defs", "-Wl,-z,noexecstack", "-o", partial] + objects + [rObject], what: "the library")
        guard rename(partial, library) == 0 else {
            throw KernelLiftError(.environment, "cannot rename \(partial) to \(library): \(String(cString: strerror(errno)))")
        }
        let routines = Wrappers.routines(for: layout)
        let exported = try definedDynamicSymbols(library)
        for r in routines where !exported.contains(r.symbol) {
            throw KernelLiftError(.environment, "\(library) does not export \(r.symbol) after linking (internal error: please report it)")
        }

        let lifted = LiftedKernel(library: library, directory: dir, tree: tree, layout: layout, routines: routines, flush: request.flush,
                                  patches: request.patches, unbuiltPatchedFiles: unbuilt, stubHeaders: stubs,
                                  libraryRoutines: missing.filter { Runtime.libraryRoutines[$0] != nil },
                                  trappingStubs: missing.filter { Runtime.libraryRoutines[$0] == nil })
        try write(lifted.report, to: dir + "/LIFT.txt")
        return lifted
    }
}
