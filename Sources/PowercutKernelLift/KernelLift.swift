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

    // MARK: Steps

    /// The output directory, created, or emptied when a previous lift made it. Never
    /// inside the tree, never containing it.
    static func prepareOutput(_ output: String, tree: String) throws(KernelLiftError) -> (path: String, created: Bool) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        var created = false
        let out = URL(fileURLWithPath: output).standardizedFileURL
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw KernelLiftError(.usage, "-o \(quoted(output)): exists and is not a directory") }
        } else {
            // Check the parent first: the directory must not be created inside the tree.
            let parent = out.deletingLastPathComponent().resolvingSymlinksInPath().path
            if isInside(parent + "/" + out.lastPathComponent, tree) {
                throw KernelLiftError(.usage, "-o \(quoted(output)) is inside the tree; kernel-lift never writes into the tree (give -o a directory outside it)")
            }
            do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
                throw KernelLiftError(.usage, "-o \(quoted(output)): cannot create it (\(error.localizedDescription))")
            }
            created = true
        }
        let real = out.resolvingSymlinksInPath().path
        if isInside(real, tree) { throw KernelLiftError(.usage, "-o \(quoted(output)) is inside the tree; kernel-lift never writes into the tree (give -o a directory outside it)") }
        if isInside(tree, real) { throw KernelLiftError(.usage, "-o \(quoted(output)) contains the tree; choose a directory outside it") }
        let entries = (try? fm.contentsOfDirectory(atPath: real)) ?? []
        if !entries.isEmpty {
            guard entries.contains(marker) else {
                throw KernelLiftError(.usage, "-o \(quoted(output)): not empty and not made by kernel-lift; choose a new or empty directory")
            }
            for e in entries { try? fm.removeItem(atPath: real + "/" + e) }
        }
        try write("powercut kernel-lift output; the whole directory is replaced by the next lift into it\n", to: real + "/" + marker)
        return (real, created)
    }

    static func isInside(_ path: String, _ dir: String) -> Bool {
        path == dir || path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }

    static func copyOut(_ rel: String, from tree: String, to copy: String) throws(KernelLiftError) {
        let fm = FileManager.default
        let src = tree + "/" + rel, dst = copy + "/" + rel
        guard fm.fileExists(atPath: src), !fm.fileExists(atPath: dst) else { return }
        let text = try readFile(src, what: rel)
        try makeDirectory((dst as NSString).deletingLastPathComponent)
        try write(text, to: dst)
    }

    static func readFile(_ path: String, what: String) throws(KernelLiftError) -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attrs?[.size] as? NSNumber, size.intValue > maxFileSize {
            throw KernelLiftError(.layout, "\(quoted(path)): \(size.intValue) bytes; a kernel source file kernel-lift reads is under \(maxFileSize >> 20) MiB")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelLiftError(.layout, "\(quoted(path)): cannot read \(what)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KernelLiftError(.layout, "\(quoted(path)): not UTF-8 text (\(what))")
        }
        return text
    }

    static func write(_ text: String, to path: String) throws(KernelLiftError) {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw KernelLiftError(.environment, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    static func makeDirectory(_ path: String) throws(KernelLiftError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw KernelLiftError(.environment, "cannot create \(path): \(error.localizedDescription)")
        }
    }

    /// The tree-relative files a unified diff touches (-p1: the first component dropped).
    static func patchTargets(_ text: String) -> [String] {
        var out: [String] = []
        for line in text.split(separator: "\n") where line.hasPrefix("+++ ") || line.hasPrefix("--- ") {
            let name = line.dropFirst(4).prefix { $0 != "\t" && $0 != " " }
            guard name != "/dev/null", let slash = name.firstIndex(of: "/") else { continue }
            let rel = String(name[name.index(after: slash)...])
            if validIncludePath(rel) && !out.contains(rel) { out.append(rel) }
        }
        return out
    }

    /// A relative path of ordinary names: no "..", not absolute, no odd bytes.
    static func validIncludePath(_ p: String) -> Bool {
        guard !p.isEmpty, !p.hasPrefix("/"), p.utf8.count < 256 else { return false }
        let ok = p.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_-./+".unicodeScalars.contains($0) }
        return ok && !p.split(separator: "/").contains { $0 == ".." || $0 == "." }
    }

    static func objectName(_ rel: String) -> String {
        ((rel as NSString).lastPathComponent as NSString).deletingPathExtension + ".o"
    }

    static func compile(_ arguments: [String], what: String) throws(KernelLiftError) {
        let r = try Tool.run("cc", arguments)
        guard r.status == 0 else {
            throw KernelLiftError(.layout, "cc cannot build \(what) with the kernel-lift shims: \(Tool.firstError(r.output))")
        }
    }

    /// Symbols the objects use and none of them defines.
    static func undefinedSymbols(_ objects: [String]) throws(KernelLiftError) -> [String] {
        let u = try Tool.run("nm", ["-u"] + objects)
        let d = try Tool.run("nm", ["-g", "--defined-only"] + objects)
        guard u.status == 0, d.status == 0 else { throw KernelLiftError(.environment, "nm failed: \(Tool.firstError(u.output + d.output))") }
        func names(_ output: String, _ keep: (Substring) -> Bool) -> Set<String> {
            Set(output.split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                guard f.count >= 2, keep(f[f.count - 2]) else { return nil }
                return String(f[f.count - 1])
            })
        }
        let undefined = names(u.output) { $0 == "U" }
        let defined = names(d.output) { _ in true }
        return undefined.subtracting(defined).filter { !$0.hasPrefix("_GLOBAL_OFFSET_TABLE_") }.sorted()
    }

    static func definedDynamicSymbols(_ library: String) throws(KernelLiftError) -> Set<String> {
        let r = try Tool.run("nm", ["-D", "--defined-only", library])
        guard r.status == 0 else { throw KernelLiftError(.environment, "nm cannot read \(library): \(Tool.firstError(r.output))") }
        return Set(r.output.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) })
    }
}
