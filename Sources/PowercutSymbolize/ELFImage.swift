// Just enough of an ELF file to symbolize addresses in it: whether it is a position-
// independent object, where its first loadable segment sits, its build ID, which debug
// sections it has, and its function symbols (the last-resort names, the ones libunwind
// would give). ELF64, little-endian only (x86-64 and aarch64 Linux); anything else is
// treated as "no binary".

#if canImport(Glibc)
import Glibc
#endif

/// A function symbol from `.symtab` (or `.dynsym` when the file is stripped).
struct ELFSymbol: Equatable {
    var value: UInt64
    var size: UInt64
    var name: String
}

/// The parts of an ELF file the symbolizers need, read with `pread` (nothing is mapped,
/// and a large binary costs only its headers until its symbols are asked for).
struct ELFImage {
    enum Kind: Equatable {
        /// ET_EXEC: linked at fixed addresses; a runtime address is its link-time address.
        case executable
        /// ET_DYN: a shared object or PIE, loaded anywhere.
        case shared
    }

    struct Section {
        var name: String
        var type: UInt32
        var offset: UInt64
        var size: UInt64
        var link: UInt32
        var entrySize: UInt64
    }

    let path: String
    let kind: Kind
    /// The page-aligned link-time address of the first PT_LOAD segment: where the module
    /// base (the start of its first mapping) sits in the file's own address space.
    let linkBase: UInt64
    /// One past the last byte any PT_LOAD segment occupies (link-time): the module's
    /// mapped size is `loadEnd - linkBase`.
    let loadEnd: UInt64
    /// The NT_GNU_BUILD_ID note in lower-case hex.
    let buildID: String?
    let sections: [Section]

    var hasDebugInfo: Bool { sections.contains { $0.name == ".debug_info" } }
    /// libdw's address-to-unit lookup needs this table; clang and swiftc only emit it
    /// with `-gdwarf-aranges`.
    var hasAranges: Bool { sections.contains { $0.name == ".debug_aranges" } }

    /// The file's own (link-time) address for a runtime address in a module loaded at `base`.
    func linkAddress(_ address: UInt64, moduleBase base: UInt64) -> UInt64 {
        switch kind {
        case .executable: return address
        case .shared: return address &- base &+ linkBase
        }
    }

    /// Reads the headers of `path`; nil when it cannot be read or is not ELF64 LE.
    init?(path: String) {
        guard let file = ReadOnlyFile(path: path) else { return nil }
        guard let ident = file.read(at: 0, count: 64), ident.count == 64,
              ident[0] == 0x7F, ident[1] == 0x45, ident[2] == 0x4C, ident[3] == 0x46,
              ident[4] == 2, ident[5] == 1 else { return nil }
        let h = ident
        switch h.u16(16) {
        case 2: kind = .executable
        case 3: kind = .shared
        default: return nil
        }
        self.path = path
        let phoff = h.u64(32), shoff = h.u64(40)
        let phentsize = UInt64(h.u16(54)), phnum = UInt64(h.u16(56))
        let shentsize = UInt64(h.u16(58))
        var shnum = UInt64(h.u16(60))
        var shstrndx = UInt64(h.u16(62))

        // Program headers: the first PT_LOAD and the notes.
        var linkBase: UInt64 = 0
        var loadEnd: UInt64 = 0
        var buildID: String?
        if phentsize >= 56, phnum > 0, phnum < 4096, let ph = file.read(at: phoff, count: Int(phentsize * phnum)) {
            var sawLoad = false
            for i in 0..<Int(phnum) {
                let o = i * Int(phentsize)
                let type = ph.u32(o)
                if type == 1 {   // PT_LOAD
                    if !sawLoad { linkBase = ph.u64(o + 16) & ~UInt64(0xFFF) }
                    sawLoad = true
                    loadEnd = max(loadEnd, (ph.u64(o + 16) &+ ph.u64(o + 40) &+ 0xFFF) & ~UInt64(0xFFF))
                } else if type == 4 && buildID == nil {   // PT_NOTE
                    let size = ph.u64(o + 32)
                    if size < 1 << 20, let notes = file.read(at: ph.u64(o + 8), count: Int(size)) {
                        buildID = Self.buildID(inNotes: notes)
                    }
                }
            }
        }
        self.linkBase = linkBase
        self.loadEnd = max(loadEnd, linkBase)

        // Section headers, with their names.
        var sections: [Section] = []
        if shoff != 0, shentsize >= 64 {
            if shnum == 0 || shstrndx == 0xFFFF, let first = file.read(at: shoff, count: 64), first.count == 64 {
                if shnum == 0 { shnum = first.u64(32) }
                if shstrndx == 0xFFFF { shstrndx = UInt64(first.u32(40)) }
            }
            if shnum > 0, shnum < 65536, let sh = file.read(at: shoff, count: Int(shentsize * shnum)) {
                var raw: [(name: UInt32, Section)] = []
                for i in 0..<Int(shnum) {
                    let o = i * Int(shentsize)
                    raw.append((sh.u32(o), Section(name: "", type: sh.u32(o + 4), offset: sh.u64(o + 24),
                                                   size: sh.u64(o + 32), link: sh.u32(o + 40), entrySize: sh.u64(o + 56))))
                }
                let names: [UInt8]
                if shstrndx < shnum, raw[Int(shstrndx)].1.size < 1 << 24,
                   let n = file.read(at: raw[Int(shstrndx)].1.offset, count: Int(raw[Int(shstrndx)].1.size)) {
                    names = n
                } else {
                    names = []
                }
                for (nameOffset, var s) in raw {
                    s.name = names.cString(at: Int(nameOffset))
                    sections.append(s)
                }
            }
        }
        self.sections = sections
        if buildID == nil, let s = sections.first(where: { $0.name == ".note.gnu.build-id" }), s.size < 1 << 16,
           let notes = file.read(at: s.offset, count: Int(s.size)) {
            buildID = Self.buildID(inNotes: notes)
        }
        self.buildID = buildID
    }

    private static func buildID(inNotes notes: [UInt8]) -> String? {
        var o = 0
        while o + 12 <= notes.count {
            let namesz = Int(notes.u32(o)), descsz = Int(notes.u32(o + 4)), type = notes.u32(o + 8)
            let name = o + 12
            let desc = name + ((namesz + 3) & ~3)
            let next = desc + ((descsz + 3) & ~3)
            guard namesz >= 0, descsz >= 0, next <= notes.count, next > o else { return nil }
            if type == 3, namesz == 4, notes[name] == 0x47, notes[name + 1] == 0x4E, notes[name + 2] == 0x55 {
                return notes[desc..<desc + descsz].map { b in
                    let s = String(b, radix: 16)
                    return b < 16 ? "0" + s : s
                }.joined()
            }
            o = next
        }
        return nil
    }

    /// The function symbols, sorted by address: `.symtab` when the file has one, else
    /// `.dynsym`. Empty when neither can be read.
    func functionSymbols() -> [ELFSymbol] {
        guard let file = ReadOnlyFile(path: path) else { return [] }
        for wanted: UInt32 in [2, 11] {   // SHT_SYMTAB, SHT_DYNSYM
            guard let table = sections.first(where: { $0.type == wanted }), table.entrySize >= 24,
                  Int(table.link) < sections.count, table.size < 1 << 28 else { continue }
            let strings = sections[Int(table.link)]
            guard strings.size < 1 << 28, let syms = file.read(at: table.offset, count: Int(table.size)),
                  let names = file.read(at: strings.offset, count: Int(strings.size)) else { continue }
            var out: [ELFSymbol] = []
            let count = syms.count / Int(table.entrySize)
            for i in 0..<count {
                let o = i * Int(table.entrySize)
                let type = syms[o + 4] & 0xF
                let shndx = syms.u16(o + 6)
                let value = syms.u64(o + 8)
                guard type == 2 || type == 10, shndx != 0, value != 0 else { continue }   // STT_FUNC, STT_GNU_IFUNC
                let name = names.cString(at: Int(syms.u32(o)))
                if !name.isEmpty { out.append(ELFSymbol(value: value, size: syms.u64(o + 16), name: name)) }
            }
            if !out.isEmpty {
                // Sorted by address; of aliases at one address keep the one with a size,
                // then the shortest name (memcpy over __memcpy_impl).
                out.sort { ($0.value, $0.size == 0 ? 1 : 0, $0.name.count, $0.name) < ($1.value, $1.size == 0 ? 1 : 0, $1.name.count, $1.name) }
                var unique: [ELFSymbol] = []
                for s in out where unique.last?.value != s.value { unique.append(s) }
                return unique
            }
        }
        return []
    }
}

/// The symbol that covers a link-time address: the last one at or below it, when the
/// address is inside its size (or the symbol has no size).
func elfSymbol(covering address: UInt64, in symbols: [ELFSymbol]) -> ELFSymbol? {
    var lo = 0, hi = symbols.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if symbols[mid].value <= address { lo = mid + 1 } else { hi = mid }
    }
    guard lo > 0 else { return nil }
    let s = symbols[lo - 1]
    if s.size > 0 && address - s.value >= s.size { return nil }
    return s
}

/// A file opened for reading, closed when dropped.
final class ReadOnlyFile {
    let fd: Int32

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Exactly `count` bytes at `offset`, or nil.
    func read(at offset: UInt64, count: Int) -> [UInt8]? {
        guard count >= 0, offset < UInt64(Int64.max) else { return nil }
        if count == 0 { return [] }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            done += n
        }
        return out
    }
}

fileprivate extension Array where Element == UInt8 {
    func u16(_ o: Int) -> UInt16 {
        guard o >= 0, o + 2 <= count else { return 0 }
        return UInt16(self[o]) | UInt16(self[o + 1]) << 8
    }
    func u32(_ o: Int) -> UInt32 {
        guard o >= 0, o + 4 <= count else { return 0 }
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = v << 8 | UInt32(self[o + i]) }
        return v
    }
    func u64(_ o: Int) -> UInt64 {
        guard o >= 0, o + 8 <= count else { return 0 }
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(self[o + i]) }
        return v
    }
    /// The NUL-terminated string at `o` ("" when out of range).
    func cString(at o: Int) -> String {
        guard o >= 0, o < count else { return "" }
        var end = o
        while end < count && self[end] != 0 { end += 1 }
        return String(decoding: self[o..<end], as: UTF8.self)
    }
}
