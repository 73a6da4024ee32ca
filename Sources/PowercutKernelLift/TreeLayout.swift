/// What a kernel tree's flushcache code looks like, found by reading it: which files
/// hold which routines, what the write-back wrapper calls and with how many arguments,
/// which macros the assembler uses. Nothing here depends on a version number.
public struct TreeLayout: Sendable, Equatable {
    /// The C file with the write-back wrapper and memcpy_flushcache (tree-relative).
    public var cFile: String
    /// The assembler file that defines the non-temporal copy core (tree-relative).
    public var coreFile: String
    /// The core's name (`__copy_user_nocache`, or a later name) and the number of
    /// arguments the C file passes it (4 before the 2023 rewrite, 3 after).
    public var core: String
    public var coreArguments: Int
    /// `__copy_user_flushcache`, when the tree has it.
    public var writeBack: String?
    /// `__memcpy_flushcache` or `memcpy_flushcache`, when the tree has it.
    public var memcpyFlushcache: String?
    /// The macro that opens the core in assembler: `ENTRY` or `SYM_FUNC_START` (or kin).
    public var entryMacro: String
    /// How the core returns: `RET` (a macro) or `ret` (the instruction).
    public var returnStyle: String
    /// The argument counts `access_ok` is called with in the C file (2, 3, or none).
    public var accessOkArguments: [Int]
    /// Assembler macros the core file uses but takes from a tree header:
    /// (name, tree-relative header, first line, text).
    public var headerMacros: [HeaderMacro]

    public struct HeaderMacro: Sendable, Equatable {
        public var name: String
        public var file: String
        public var line: Int
        public var text: String
    }

    public static let cPath = "arch/x86/lib/usercopy_64.c"
    /// Where the core may live, newest layout first.
    public static let corePaths = ["arch/x86/lib/copy_user_uncached_64.S", "arch/x86/lib/copy_user_64.S"]
    /// Names the non-temporal core has had.
    public static let coreNames = ["__copy_user_nocache", "copy_to_nontemporal"]

    /// Works out the layout from the sources. `read` returns a tree-relative file's
    /// text, or nil when the tree has no such file.
    public static func detect(read: (String) throws(KernelLiftError) -> String?) throws(KernelLiftError) -> TreeLayout {
        guard let cText = try read(cPath) else {
            throw KernelLiftError(.layout, "the tree has no \(cPath) (the flushcache routines); is this a Linux source tree?")
        }
        let c = SourceText(cText)
        let writeBack = c.cDefinition(of: "__copy_user_flushcache")
        let memcpyName = ["__memcpy_flushcache", "memcpy_flushcache"].first { c.cDefinition(of: $0) != nil }
        guard writeBack != nil || memcpyName != nil else {
            throw KernelLiftError(.layout, "\(cPath) defines neither __copy_user_flushcache nor __memcpy_flushcache/memcpy_flushcache")
        }

        var cores: [(path: String, text: SourceText)] = []
        for p in corePaths {
            if let t = try read(p) { cores.append((p, SourceText(t, assembler: true))) }
        }
        guard !cores.isEmpty else {
            throw KernelLiftError(.layout, "the tree has neither \(corePaths[0]) nor \(corePaths[1]) (the non-temporal copy core)")
        }

        // The core is what the write-back wrapper calls and an assembler file defines.
        var coreName: String?
        var coreArguments: Int?
        if let wb = writeBack {
            for name in c.calledNames(in: wb.body) where cores.contains(where: { $0.text.assemblerDefinition(of: name) != nil }) {
                coreName = name
                coreArguments = c.calls(of: name, in: wb.body).first?.arguments
                break
            }
            guard coreName != nil else {
                let files = cores.map(\.path).joined(separator: " or ")
                throw KernelLiftError(.layout, "__copy_user_flushcache (\(cPath):\(wb.line)) calls no routine that \(files) defines")
            }
        } else {
            coreName = coreNames.first { name in cores.contains { $0.text.assemblerDefinition(of: name) != nil } }
            guard coreName != nil else {
                throw KernelLiftError(.layout, "\(cores.map(\.path).joined(separator: " and ")) define no \(coreNames.joined(separator: " or "))")
            }
        }
        let core = coreName!
        let file = cores.first { $0.text.assemblerDefinition(of: core) != nil }!
        // Without a call to count, the file decides: the 2023 core (its own file) takes three.
        let arguments = coreArguments ?? (file.path == corePaths[0] ? 3 : 4)
        guard arguments == 3 || arguments == 4 else {
            throw KernelLiftError(.layout, "\(cPath) calls \(core) with \(arguments) arguments; kernel-lift knows the 3- and 4-argument forms")
        }

        let returnStyle = file.text.usesStatement("RET") ? "RET" : "ret"
        let accessOk = Array(Set(c.calls(of: "access_ok", in: 0..<c.code.count).map(\.arguments))).sorted()

        // Assembler macros the core file invokes but does not define: older trees keep
        // ALIGN_DESTINATION in <asm/asm.h>. They are the tree's code, taken from there.
        let defined = Set(file.text.assemblerMacros().map(\.name))
        var headerMacros: [HeaderMacro] = []
        for inc in file.text.includes() where inc.path.hasPrefix("asm/") {
            let headerPath = "arch/x86/include/" + inc.path
            guard let h = try read(headerPath) else { continue }
            for m in SourceText(h, assembler: true).assemblerMacros()
            where !defined.contains(m.name) && !AssemblerPrelude.macros.contains(m.name) && file.text.usesStatement(m.name)
                && !headerMacros.contains(where: { $0.name == m.name }) {
                headerMacros.append(HeaderMacro(name: m.name, file: headerPath, line: m.line, text: m.text))
            }
        }
        if file.text.usesStatement("ALIGN_DESTINATION") && !defined.contains("ALIGN_DESTINATION")
            && !headerMacros.contains(where: { $0.name == "ALIGN_DESTINATION" }) {
            throw KernelLiftError(.layout, "\(file.path) uses ALIGN_DESTINATION, which neither it nor the <asm/…> headers it includes define")
        }

        return TreeLayout(cFile: cPath, coreFile: file.path, core: core, coreArguments: arguments,
                          writeBack: writeBack?.name, memcpyFlushcache: memcpyName,
                          entryMacro: file.text.assemblerDefinition(of: core)!, returnStyle: returnStyle,
                          accessOkArguments: accessOk, headerMacros: headerMacros)
    }

    /// One line per fact, for the lift report.
    public var summary: [String] {
        var lines = ["C file: \(cFile)", "non-temporal core: \(core) in \(coreFile), opened with \(entryMacro), returns with \(returnStyle), called with \(coreArguments) arguments"]
        lines.append("write-back wrapper: \(writeBack ?? "none in this tree")")
        lines.append("memcpy_flushcache: \(memcpyFlushcache ?? "none in this tree")")
        lines.append("access_ok: " + (accessOkArguments.isEmpty ? "not used" : accessOkArguments.map { "\($0)-argument" }.joined(separator: " and ") + " form"))
        for m in headerMacros { lines.append("assembler macro \(m.name) taken from \(m.file):\(m.line)") }
        return lines
    }
}
