// libdw (elfutils) as the alternative to llvm-symbolizer, loaded at run time so that
// powercut neither links nor needs it. Its address-to-unit lookup goes through
// `.debug_aranges`: gcc emits that section, clang and swiftc only with
// `-gdwarf-aranges`. Without it libdw still names the function (from the symbol table)
// but finds no line.

#if canImport(Glibc)
import Glibc
#endif

/// The few libdw entry points the resolver calls.
final class Libdw: @unchecked Sendable {
    typealias Begin = @convention(c) (UnsafeRawPointer) -> OpaquePointer?
    typealias End = @convention(c) (OpaquePointer?) -> Void
    typealias ReportELF = @convention(c) (OpaquePointer?, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32, UInt64, Bool) -> OpaquePointer?
    typealias ReportEnd = @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?) -> Int32
    typealias GetSrc = @convention(c) (OpaquePointer?, UInt64) -> OpaquePointer?
    typealias LineInfo = @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt64>?, UnsafeMutablePointer<Int32>?,
                                          UnsafeMutablePointer<Int32>?, OpaquePointer?, OpaquePointer?) -> UnsafePointer<CChar>?
    typealias AddrName = @convention(c) (OpaquePointer?, UInt64) -> UnsafePointer<CChar>?
    typealias AddrDie = @convention(c) (OpaquePointer?, UInt64, UnsafeMutablePointer<UInt64>) -> UnsafeMutableRawPointer?
    typealias GetScopes = @convention(c) (UnsafeMutableRawPointer, UInt64, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32
    typealias GetScopesDie = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Int32
    typealias Tag = @convention(c) (UnsafeMutableRawPointer) -> Int32
    typealias DieName = @convention(c) (UnsafeMutableRawPointer) -> UnsafePointer<CChar>?
    typealias Attr = @convention(c) (UnsafeMutableRawPointer, UInt32, UnsafeMutableRawPointer) -> UnsafeMutableRawPointer?
    typealias FormUData = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt64>) -> Int32
    typealias GetSrcFiles = @convention(c) (UnsafeMutableRawPointer, UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<Int>) -> Int32
    typealias FileSrc = @convention(c) (OpaquePointer?, Int, OpaquePointer?, OpaquePointer?) -> UnsafePointer<CChar>?

    let begin: Begin, end: End, reportELF: ReportELF, reportEnd: ReportEnd
    let getsrc: GetSrc, lineinfo: LineInfo, addrname: AddrName, addrdie: AddrDie
    let getscopes: GetScopes, getscopesDie: GetScopesDie, tag: Tag, diename: DieName, attrIntegrate: Attr, formudata: FormUData
    let getsrcfiles: GetSrcFiles, filesrc: FileSrc
    /// Dwfl_Callbacks: find_elf, find_debuginfo, section_address, debuginfo_path.
    let callbacks: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    static let shared: Libdw? = Libdw()

    private init?() {
        guard let h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libdw.so", RTLD_NOW | RTLD_LOCAL) else { return nil }
        func sym<T>(_ name: String, _: T.Type) -> T? {
            guard let p = dlsym(h, name) else { return nil }
            return unsafeBitCast(p, to: T.self)
        }
        guard let begin = sym("dwfl_begin", Begin.self), let end = sym("dwfl_end", End.self),
              let reportELF = sym("dwfl_report_elf", ReportELF.self), let reportEnd = sym("dwfl_report_end", ReportEnd.self),
              let getsrc = sym("dwfl_module_getsrc", GetSrc.self), let lineinfo = sym("dwfl_lineinfo", LineInfo.self),
              let addrname = sym("dwfl_module_addrname", AddrName.self), let addrdie = sym("dwfl_module_addrdie", AddrDie.self),
              let getscopes = sym("dwarf_getscopes", GetScopes.self),
              let getscopesDie = sym("dwarf_getscopes_die", GetScopesDie.self), let tag = sym("dwarf_tag", Tag.self),
              let diename = sym("dwarf_diename", DieName.self), let attrIntegrate = sym("dwarf_attr_integrate", Attr.self),
              let formudata = sym("dwarf_formudata", FormUData.self), let getsrcfiles = sym("dwarf_getsrcfiles", GetSrcFiles.self),
              let filesrc = sym("dwarf_filesrc", FileSrc.self),
              let findELF = dlsym(h, "dwfl_build_id_find_elf"), let findDebug = dlsym(h, "dwfl_standard_find_debuginfo"),
              let sectionAddress = dlsym(h, "dwfl_offline_section_address")
        else { return nil }
        self.begin = begin; self.end = end; self.reportELF = reportELF; self.reportEnd = reportEnd
        self.getsrc = getsrc; self.lineinfo = lineinfo; self.addrname = addrname; self.addrdie = addrdie
        self.getscopes = getscopes; self.getscopesDie = getscopesDie; self.tag = tag; self.diename = diename; self.attrIntegrate = attrIntegrate
        self.formudata = formudata; self.getsrcfiles = getsrcfiles; self.filesrc = filesrc
        callbacks = .allocate(capacity: 4)
        callbacks[0] = findELF
        callbacks[1] = findDebug
        callbacks[2] = sectionAddress
        callbacks[3] = nil
    }
}

/// One object file opened with libdw, at its link-time addresses.
final class LibdwResolver: AddressResolver {
    private let lib: Libdw
    private let dwfl: OpaquePointer
    private let module: OpaquePointer

    init?(path: String) {
        guard let lib = Libdw.shared, let dwfl = lib.begin(UnsafeRawPointer(lib.callbacks)) else { return nil }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        // Base 0 without adding the first segment's address: the module sits at its
        // link-time addresses, whatever kind of object it is.
        guard let module = lib.reportELF(dwfl, name, path, -1, 0, false) else {
            lib.end(dwfl)
            return nil
        }
        _ = lib.reportEnd(dwfl, nil, nil)
        self.lib = lib
        self.dwfl = dwfl
        self.module = module
    }

    deinit { lib.end(dwfl) }

    func resolve(_ addresses: [UInt64]) -> [[SourcePlace]]? {
        addresses.map(frames)
    }

    private static let inlinedSubroutine: Int32 = 0x1D, subprogram: Int32 = 0x2E
    private static let callFile: UInt32 = 0x58, callLine: UInt32 = 0x59, callColumn: UInt32 = 0x57

    private func frames(_ address: UInt64) -> [SourcePlace] {
        // The innermost location from the line table.
        var innermost = SourcePlace(function: lib.addrname(module, address).map { String(cString: $0) })
        if let line = lib.getsrc(module, address) {
            var l: Int32 = 0, c: Int32 = 0
            if let file = lib.lineinfo(line, nil, &l, &c, nil, nil) {
                innermost.file = String(cString: file)
                innermost.line = Int(l)
                innermost.column = Int(c)
            }
        }
        // The chain of inlined calls: each inlined_subroutine scope names the callee,
        // and its call_file/call_line are the location in the next scope out.
        var bias: UInt64 = 0
        guard let cu = lib.addrdie(module, address, &bias) else { return innermost.function == nil && innermost.file == nil ? [] : [innermost] }
        // The innermost scope at the address, then its concrete parents (dwarf_getscopes
        // itself goes on through the inlined function's abstract definition instead).
        var found: UnsafeMutableRawPointer?
        let count = lib.getscopes(cu, address &- bias, &found)
        guard count > 0, let found else { return [innermost] }
        let innermostDie = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)   // sizeof(Dwarf_Die)
        defer { innermostDie.deallocate() }
        innermostDie.copyMemory(from: found, byteCount: 32)
        free(found)
        var scopes: UnsafeMutableRawPointer?
        let n = lib.getscopesDie(innermostDie, &scopes)
        guard n > 0, let scopes else { return [innermost] }
        defer { free(scopes) }
        var files: OpaquePointer?
        var fileCount = 0
        let haveFiles = lib.getsrcfiles(cu, &files, &fileCount) == 0
        let attribute = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)
        defer { attribute.deallocate() }
        func number(_ die: UnsafeMutableRawPointer, _ code: UInt32) -> UInt64? {
            var v: UInt64 = 0
            guard let a = lib.attrIntegrate(die, code, attribute), lib.formudata(a, &v) == 0 else { return nil }
            return v
        }
        var out: [SourcePlace] = []
        var location = innermost
        for i in 0..<Int(n) {
            let die = scopes + i * 32   // sizeof(Dwarf_Die)
            let t = lib.tag(die)
            guard t == Self.inlinedSubroutine || t == Self.subprogram else { continue }
            var f = location
            f.function = lib.diename(die).map { String(cString: $0) } ?? (t == Self.subprogram ? innermost.function : nil)
            out.append(f)
            if t == Self.subprogram { break }
            // Where this inlined body was called from, in the scope outside it.
            var next = SourcePlace(function: nil)
            if haveFiles, let fi = number(die, Self.callFile), Int(fi) < fileCount, let name = lib.filesrc(files, Int(fi), nil, nil) {
                next.file = String(cString: name)
            }
            next.line = Int(number(die, Self.callLine) ?? 0)
            next.column = Int(number(die, Self.callColumn) ?? 0)
            location = next
        }
        if out.isEmpty { out = [innermost] }
        // The outermost frame's name is the symbol's when the debug info has none.
        if out[out.count - 1].function == nil { out[out.count - 1].function = innermost.function }
        return out
    }
}
