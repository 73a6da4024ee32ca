import Foundation
import Testing
import PowercutTrace
@testable import PowercutSymbolize
import PowercutTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The shared test subject (PowercutTestSupport's LoadedCSubject) described the way a
/// recorder would: module path, base (where its first segment is mapped), size (from its
/// program headers), build ID; plus what its ELF file says of pc_known_store.
struct CSubject: Sendable {
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

    /// Builds, loads and reads the subject once per test process; nil without a C compiler.
    static let shared: CSubject? = {
        guard let loaded = LoadedCSubject.shared, let image = ELFImage(path: loaded.path) else { return nil }
        let sym = elfSymbol(covering: image.linkAddress(loaded.entry, moduleBase: loaded.base), in: image.functionSymbols())
        return CSubject(directory: loaded.directory, path: loaded.path, base: loaded.base, size: image.loadEnd - image.linkBase,
                        buildID: image.buildID, entry: loaded.entry, entrySize: sym?.size ?? 16,
                        returnAddress: loaded.returnAddress, hasAranges: image.hasAranges)
    }()
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
                == ["pc_known_store (subject.c:\(LoadedCSubject.storeLine))"])
        // A caller's frame is looked up one byte back: the call's line, not the next one.
        #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: true, modules: modules)
                == ["pc_known_caller (subject.c:\(LoadedCSubject.callLine))"])
        #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: false, modules: modules)
                == ["pc_known_caller (subject.c:\(LoadedCSubject.callLine + 1))"])
        // Somewhere in pc_known_store is the inlined pc_put_byte: two frames, innermost first.
        let inlined = (0..<s.entrySize).lazy.map { sym.locations(of: s.entry + $0, isReturnAddress: false, modules: modules) }
            .first { $0.count == 2 }
        let frames = try #require(inlined)
        #expect(frames.map(\.function) == ["pc_put_byte", "pc_known_store"])
        #expect(frames.map(\.fileName) == ["subject.c", "subject.c"])
        #expect(frames.map(\.line) == [LoadedCSubject.putByteLine, LoadedCSubject.storeLine])
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
               at 0x\(hex(inside)): pc_put_byte (subject.c:\(LoadedCSubject.putByteLine))
               by 0x\(hex(inside)): pc_known_store (subject.c:\(LoadedCSubject.storeLine))
               by 0x\(hex(s.returnAddress)): pc_known_caller (subject.c:\(LoadedCSubject.callLine))
               by 0x1234: ???

            """)
        // Every output reads the same frames: inlined calls expanded, callers one byte back.
        let stack = frames.frames([inside, s.returnAddress, 0x1234], modules: modules)
        #expect(stack.map(\.function) == ["pc_put_byte", "pc_known_store", "pc_known_caller", nil])
        #expect(stack.map(\.isInlined) == [true, false, false, false])
        #expect(stack[0].stableName == "libsubject.so!pc_put_byte")
        #expect(stack[3].text == "???" && stack[3].stableName == "?")
        let entry = try #require(frames.frames([s.entry], modules: modules).first)
        #expect(entry.function == "pc_known_store" && entry.file == s.directory + "/subject.c" && entry.line == LoadedCSubject.storeLine)
    }

    @Test(.enabled(if: haveSubject && Libdw.shared != nil)) func libdwIsTheAlternative() throws {
        let s = try #require(CSubject.shared)
        let sym = DebugInfoSymbolizer(options: .init(llvmSymbolizer: nil, libdw: true))
        let modules = [s.module]
        let d = sym.descriptions(of: s.entry, isReturnAddress: false, modules: modules)
        if s.hasAranges {
            #expect(d == ["pc_known_store (subject.c:\(LoadedCSubject.storeLine))"])
            #expect(sym.descriptions(of: s.returnAddress, isReturnAddress: true, modules: modules)
                    == ["pc_known_caller (subject.c:\(LoadedCSubject.callLine))"])
            let inlined = (0..<s.entrySize).lazy.map { sym.locations(of: s.entry + $0, isReturnAddress: false, modules: modules) }
                .first { $0.count == 2 }
            #expect(inlined?.map(\.function) == ["pc_put_byte", "pc_known_store"])
            #expect(inlined?.map(\.line) == [LoadedCSubject.putByteLine, LoadedCSubject.storeLine])
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
