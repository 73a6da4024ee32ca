import Foundation
import Testing
import PowercutTrace
@testable import PowercutSymbolize
#if canImport(Glibc)
import Glibc
#endif

/// A tiny C subject with functions at known lines, built into a shared object at test
/// time, loaded into this process, and described the way a recorder would: module path,
/// base (where its first segment is mapped), size (from its program headers), build ID.
struct CSubject: Sendable {
    static let source = """
        /* subject.c: a tiny subject for the symbolizer tests. Line numbers matter. */
        static inline __attribute__((always_inline)) void pc_put_byte(volatile char *d, char c)
        {
            *d = c;
        }
        void *pc_last_return;
        __attribute__((noinline)) void pc_known_store(volatile char *d, char c) { pc_last_return = __builtin_return_address(0); pc_put_byte(d, c); }
        __attribute__((noinline)) void pc_known_caller(volatile char *d)
        {
            pc_known_store(d, 1);
            d[2] = 3;
        }
        """
    // The lines above, as the debug info has them.
    static let putByteLine = 4, storeLine = 7, callLine = 10

    var directory: String
    var path: String
    var base: UInt64
    var size: UInt64
    var buildID: String?
    /// pc_known_store's entry and size; the return address into pc_known_caller.
    var entry: UInt64
    var entrySize: UInt64
    var returnAddress: UInt64
    var hasAranges: Bool

    var module: Module { Module(path: path, base: base, size: size, buildID: buildID) }

    /// Builds and loads the subject once per test process; nil without a C compiler.
    static let shared: CSubject? = build()

    private static func build() -> CSubject? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-symbolizer-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let c = dir + "/subject.c", so = dir + "/libsubject.so"
        guard (try? source.write(toFile: c, atomically: true, encoding: .utf8)) != nil else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id", "-o", so, c]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        guard p.terminationStatus == 0, let handle = dlopen(so, RTLD_NOW | RTLD_LOCAL),
              let store = dlsym(handle, "pc_known_store"), let caller = dlsym(handle, "pc_known_caller"),
              let last = dlsym(handle, "pc_last_return") else { return nil }
        // Run the subject so that it records a genuine return address.
        var buffer = [CChar](repeating: 0, count: 4)
        typealias Caller = @convention(c) (UnsafeMutablePointer<CChar>) -> Void
        buffer.withUnsafeMutableBufferPointer { unsafeBitCast(caller, to: Caller.self)($0.baseAddress!) }
        let returnAddress = UInt64(UInt(bitPattern: last.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee))
        guard let fbase = loadBase(of: store), let image = ELFImage(path: so) else { return nil }
        let entry = UInt64(UInt(bitPattern: store))
        let symbols = image.functionSymbols()
        let base = UInt64(UInt(bitPattern: fbase))
        let sym = elfSymbol(covering: image.linkAddress(entry, moduleBase: base), in: symbols)
        return CSubject(directory: dir, path: so, base: base, size: image.loadEnd - image.linkBase,
                        buildID: image.buildID, entry: entry, entrySize: sym?.size ?? 16, returnAddress: returnAddress,
                        hasAranges: image.hasAranges)
    }
}

/// dladdr's dli_fbase: where the object holding `address` is mapped. (glibc declares
/// dladdr only under _GNU_SOURCE, so it is looked up by name; Dl_info is four pointers.)
func loadBase(of address: UnsafeRawPointer) -> UnsafeRawPointer? {
    typealias DlAddr = @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>) -> Int32
    guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dladdr") else { return nil }   // RTLD_DEFAULT
    var info = [UnsafeRawPointer?](repeating: nil, count: 4)   // fname, fbase, sname, saddr
    let ok = info.withUnsafeMutableBufferPointer { unsafeBitCast(f, to: DlAddr.self)(address, $0.baseAddress!) }
    return ok != 0 ? info[1] : nil
}

let haveSubject = CSubject.shared != nil

extension Symbolizer {
    /// The text of each frame of one address, through the one resolution path.
    func descriptions(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [String] {
        FrameResolver(self).frames(of: address, index: isReturnAddress ? 1 : 0, modules: modules).map(\.text)
    }
}
let haveLLVMSymbolizer = LLVMSymbolizerTool.find() != nil

@Suite(.serialized) struct SymbolizerTests {
    @Test(.enabled(if: haveSubject)) func theELFReaderFindsBaseSizeBuildIDAndSymbols() throws {
        let s = try #require(CSubject.shared)
        let image = try #require(ELFImage(path: s.path))
        #expect(image.kind == .shared && image.linkBase == 0)
        #expect(image.loadEnd > 0 && image.hasDebugInfo)
        #expect(image.buildID?.count == 40, "cc -Wl,--build-id writes a 20-byte SHA-1 note")
        let names = image.functionSymbols().map(\.name)
        #expect(names.contains("pc_known_store") && names.contains("pc_known_caller"))
        #expect(ELFImage(path: "/nonexistent/libx.so") == nil)
        #expect(ELFImage(path: s.directory + "/subject.c") == nil, "not an ELF file")
    }

    @Test(.enabled(if: haveSubject && haveLLVMSymbolizer)) func llvmSymbolizerNamesFunctionFileLineAndInlining() throws {
        let s = try #require(CSubject.shared)
        let sym = DebugInfoSymbolizer(options: .init(libdw: false))
        defer { sym.close() }
        let modules = [s.module]
        #expect(sym.descriptions(of: s.entry, isReturnAddress: false, modules: modules)
                == ["pc_known_store (subject.c:\(CSubject.storeLine))"])
        // A caller's frame is looked up one byte back: the call's line, not the next one.
        #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: true, modules: modules)
                == ["pc_known_caller (subject.c:\(CSubject.callLine))"])
        #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: false, modules: modules)
                == ["pc_known_caller (subject.c:\(CSubject.callLine + 1))"])
        // Somewhere in pc_known_store is the inlined pc_put_byte: two frames, innermost first.
        let inlined = (0..<s.entrySize).lazy.map { sym.locations(of: s.entry + $0, isReturnAddress: false, modules: modules) }
            .first { $0.count == 2 }
        let frames = try #require(inlined)
        #expect(frames.map(\.function) == ["pc_put_byte", "pc_known_store"])
        #expect(frames.map(\.fileName) == ["subject.c", "subject.c"])
        #expect(frames.map(\.line) == [CSubject.putByteLine, CSubject.storeLine])
        #expect(frames[0].file?.hasPrefix(s.directory) == true, "the debug info's own path")
        #expect(sym.notes.isEmpty)
    }

    @Test(.enabled(if: haveSubject && haveLLVMSymbolizer)) func stacksPrintValgrindStyleWithInlineFramesAsByLines() throws {
        let s = try #require(CSubject.shared)
        let sym = DebugInfoSymbolizer(options: .init(libdw: false))
        defer { sym.close() }
        let modules = [s.module]
        let inside = try #require((0..<s.entrySize).lazy.map { s.entry + $0 }
            .first { sym.locations(of: $0, isReturnAddress: false, modules: modules).count == 2 })
        let frames = FrameResolver(sym)
        frames.prefetch(stacks: [[inside, s.returnAddress, 0x1234]], modules: modules)
        let text = frames.stackText([inside, s.returnAddress, 0x1234], modules: modules, indent: "   ")
        #expect(text == """
               at 0x\(hex(inside)): pc_put_byte (subject.c:\(CSubject.putByteLine))
               by 0x\(hex(inside)): pc_known_store (subject.c:\(CSubject.storeLine))
               by 0x\(hex(s.returnAddress)): pc_known_caller (subject.c:\(CSubject.callLine))
               by 0x1234: ???

            """)
        // Every output reads the same frames: inlined calls expanded, callers one byte back.
        let stack = frames.frames([inside, s.returnAddress, 0x1234], modules: modules)
        #expect(stack.map(\.function) == ["pc_put_byte", "pc_known_store", "pc_known_caller", nil])
        #expect(stack.map(\.isInlined) == [true, false, false, false])
        #expect(stack[0].stableName == "libsubject.so!pc_put_byte")
        #expect(stack[3].text == "???" && stack[3].stableName == "?")
        let entry = try #require(frames.frames([s.entry], modules: modules).first)
        #expect(entry.function == "pc_known_store" && entry.file == s.directory + "/subject.c" && entry.line == CSubject.storeLine)
    }

    @Test(.enabled(if: haveSubject && Libdw.shared != nil)) func libdwIsTheAlternative() throws {
        let s = try #require(CSubject.shared)
        let sym = DebugInfoSymbolizer(options: .init(llvmSymbolizer: nil, libdw: true))
        let modules = [s.module]
        let d = sym.descriptions(of: s.entry, isReturnAddress: false, modules: modules)
        if s.hasAranges {
            #expect(d == ["pc_known_store (subject.c:\(CSubject.storeLine))"])
            #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: true, modules: modules)
                    == ["pc_known_caller (subject.c:\(CSubject.callLine))"])
            let inlined = (0..<s.entrySize).lazy.map { sym.locations(of: s.entry + $0, isReturnAddress: false, modules: modules) }
                .first { $0.count == 2 }
            #expect(inlined?.map(\.function) == ["pc_put_byte", "pc_known_store"])
            #expect(inlined?.map(\.line) == [CSubject.putByteLine, CSubject.storeLine])
        } else {
            // Without .debug_aranges libdw finds no unit: names only, and a note says why.
            #expect(d.first?.hasPrefix("pc_known_store") == true)
            #expect(sym.notes.contains { $0.contains(".debug_aranges") })
        }
    }

    @Test(.enabled(if: haveSubject)) func withNoToolTheSymbolTableNamesFunctions() throws {
        let s = try #require(CSubject.shared)
        let sym = DebugInfoSymbolizer(options: .init(llvmSymbolizer: nil, libdw: false))
        #expect(sym.descriptions(of: s.entry + 1, isReturnAddress: false, modules: [s.module])
                == ["pc_known_store (in \(s.path))"])
        #expect(sym.notes.contains { $0.contains("neither llvm-symbolizer nor libdw") })
    }

    @Test(.enabled(if: haveSubject)) func aHelperThatDiesOrHangsIsOnlyLessInformation() throws {
        let s = try #require(CSubject.shared)
        // One that exits at once, one that never answers, one that answers nonsense.
        var tools: [String] = []
        for (name, body) in [("dies", "exit 1"), ("hangs", "exec sleep 30"), ("echoes", "exec cat")] {
            let path = s.directory + "/\(name).sh"
            try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
            tools.append(path)
        }
        for tool in tools {
            let sym = DebugInfoSymbolizer(options: .init(llvmSymbolizer: tool, libdw: false, timeoutMilliseconds: 300))
            #expect(sym.descriptions(of: s.entry, isReturnAddress: false, modules: [s.module])
                    == ["pc_known_store (in \(s.path))"], "\(tool)")
            #expect(sym.notes.contains { $0.contains("stopped answering") }, "\(tool)")
            // Asked again, it does not wait again.
            #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: true, modules: [s.module])
                    == ["pc_known_caller (in \(s.path))"])
            sym.close()
        }
    }

    @Test(.enabled(if: haveSubject)) func aMissingBinaryOrAnotherBuildFallsBackToModuleAndOffset() throws {
        let s = try #require(CSubject.shared)
        let other = Module(path: s.path, base: s.base, size: s.size, buildID: "00112233")
        let sym = DebugInfoSymbolizer()
        defer { sym.close() }
        #expect(sym.descriptions(of: s.entry, isReturnAddress: false, modules: [other])
                == ["libsubject.so+0x\(hex(s.entry - s.base))"])
        #expect(sym.notes == ["\(s.path): build-id \(s.buildID ?? "") differs from the trace's 00112233; its frames show module+offset"])
        let gone = Module(path: "/nonexistent/libgone.so", base: 0x7000_0000_0000, size: 0x1000)
        #expect(sym.descriptions(of: 0x7000_0000_0010, isReturnAddress: false, modules: [gone]) == ["libgone.so+0x10"])
        #expect(sym.notes.last == "/nonexistent/libgone.so: not found or not an ELF file here; its frames show module+offset")
        // A copy in a search directory, by file name, is used instead.
        let copies = DebugInfoSymbolizer(options: .init(libdw: false, searchDirectories: [s.directory]))
        defer { copies.close() }
        let moved = Module(path: "/elsewhere/libsubject.so", base: s.base, size: s.size, buildID: s.buildID)
        #expect(copies.descriptions(of: s.entry, isReturnAddress: false, modules: [moved]).first?.hasPrefix("pc_known_store") == true)
    }

    @Test func llvmOutputIsParsed() {
        #expect(LLVMSymbolizerProcess.parse(["f", "/a/b.c:12:3", "g", "/a/c:d.c:40:0"])
                == [SourcePlace(function: "f", file: "/a/b.c", line: 12, column: 3),
                    SourcePlace(function: "g", file: "/a/c:d.c", line: 40, column: 0)])
        #expect(LLVMSymbolizerProcess.parse(["??", "??:0:0"]) == [])
        #expect(LLVMSymbolizerProcess.frame(function: "h", location: "x.c:7:2 (discriminator 3)")
                == SourcePlace(function: "h", file: "x.c", line: 7, column: 2))
        #expect(LLVMSymbolizerProcess.frame(function: "h", location: "??:0:0") == SourcePlace(function: "h"))
    }

    @Test func theToolIsFoundByTheEnvironmentFirst() {
        #expect(LLVMSymbolizerTool.find(environment: ["POWERCUT_LLVM_SYMBOLIZER": ""]) == nil)
        #expect(LLVMSymbolizerTool.find(environment: ["POWERCUT_LLVM_SYMBOLIZER": "/bin/true"]) == "/bin/true")
        #expect(LLVMSymbolizerTool.find(environment: ["POWERCUT_LLVM_SYMBOLIZER": "/nonexistent"]) == nil)
    }
}
