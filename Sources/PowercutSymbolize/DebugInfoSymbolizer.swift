import PowercutTrace

/// Turns an object file's own addresses into source frames (llvm-symbolizer, libdw).
protocol AddressResolver: AnyObject {
    /// The frames of each link-time address, innermost first (empty when unknown);
    /// nil when the resolver failed and should not be asked again.
    func resolve(_ addresses: [UInt64]) -> [[SourcePlace]]?
}

extension LLVMSymbolizerProcess: AddressResolver {
    func resolve(_ addresses: [UInt64]) -> [[SourcePlace]]? { symbolize(addresses) }
}

/// Symbolizes the frames of a trace's stacks from its module map, on any machine that
/// has the binaries: function, file:line and inlined calls from the debug info.
///
/// Per module, in order of preference:
/// 1. llvm-symbolizer (the Swift toolchain's), one long-lived process per module, fed
///    in batches;
/// 2. libdw (elfutils), loaded at run time when present — it finds a unit only through
///    `.debug_aranges`, which gcc emits but clang and swiftc omit unless given
///    `-gdwarf-aranges`, so without it libdw yields names only;
/// 3. the ELF symbol table (function names, as libunwind would give them);
/// 4. module+offset, when the binary is missing, unreadable, or its build ID differs
///    from the one the trace recorded (its debug info would name the wrong code).
///
/// Every answer is cached per address. A missing tool or binary is never an error; what
/// was given up on is kept in `notes`, one line per module.
public final class DebugInfoSymbolizer: Symbolizer {
    public struct Options: Sendable {
        /// The llvm-symbolizer to run; nil: none.
        public var llvmSymbolizer: String?
        /// Try libdw when llvm-symbolizer is missing or fails.
        public var libdw: Bool
        /// Directories to look in, by file name, for a module whose recorded path is
        /// missing or holds another build (binaries copied off the machine that traced).
        public var searchDirectories: [String]
        /// How long llvm-symbolizer may take to answer one batch before it is given up on.
        public var timeoutMilliseconds: Int32

        public init(llvmSymbolizer: String? = LLVMSymbolizerTool.find(), libdw: Bool = true, searchDirectories: [String] = [],
                    timeoutMilliseconds: Int32 = 20_000) {
            self.llvmSymbolizer = llvmSymbolizer
            self.libdw = libdw
            self.searchDirectories = searchDirectories
            self.timeoutMilliseconds = timeoutMilliseconds
        }
    }

    public let options: Options
    private var states: [String: ModuleState] = [:]
    /// What could not be done, one line per module (for a `note:` on standard error).
    public private(set) var notes: [String] = []

    public init(options: Options = Options()) {
        self.options = options
    }

    final class ModuleState {
        let module: Module
        let image: ELFImage?
        /// The file actually read (the recorded path or one found in a search directory).
        let file: String?
        var resolver: AddressResolver?
        var resolverTried = false
        var symbols: [ELFSymbol]?
        var cache: [UInt64: [SourcePlace]] = [:]

        init(module: Module, image: ELFImage?, file: String?) {
            self.module = module
            self.image = image
            self.file = file
        }
    }

    private func state(for m: Module) -> ModuleState {
        let key = "\(m.path)@\(m.base)"
        if let s = states[key] { return s }
        let s = open(m)
        states[key] = s
        return s
    }

    /// Finds the module's binary and checks it is the build the trace saw.
    private func open(_ m: Module) -> ModuleState {
        let name = m.path.split(separator: "/").last.map(String.init) ?? m.path
        var candidates = [m.path]
        for dir in options.searchDirectories { candidates.append(dir + "/" + name) }
        var problem: String?
        for path in candidates {
            guard let image = ELFImage(path: path) else {
                if path == m.path { problem = "\(m.path): not found or not an ELF file here" }
                continue
            }
            if let want = m.buildID?.lowercased(), let have = image.buildID, want != have {
                if path == m.path { problem = "\(m.path): build-id \(have) differs from the trace's \(want)" }
                continue
            }
            if !image.hasDebugInfo {
                note("\(path): no debug info; frames show function names only")
            }
            return ModuleState(module: m, image: image, file: path)
        }
        note((problem ?? "\(m.path): not found") + "; its frames show module+offset")
        return ModuleState(module: m, image: nil, file: nil)
    }

    private func note(_ s: String) {
        if !notes.contains(s) { notes.append(s) }
    }

    private func resolver(for s: ModuleState) -> AddressResolver? {
        if s.resolverTried { return s.resolver }
        s.resolverTried = true
        guard let image = s.image, let file = s.file, image.hasDebugInfo else { return nil }
        if let tool = options.llvmSymbolizer, let p = LLVMSymbolizerProcess(tool: tool, object: file) {
            p.timeoutMilliseconds = options.timeoutMilliseconds
            s.resolver = p
        } else if options.libdw, let d = LibdwResolver(path: file) {
            s.resolver = d
            if !image.hasAranges {
                note("\(file): no .debug_aranges (clang/swiftc need -gdwarf-aranges), so libdw gives names without lines")
            }
        } else {
            note("\(file): neither llvm-symbolizer nor libdw is available; frames show function names only")
        }
        return s.resolver
    }

    /// The link-time address to look up for a runtime address in `s`'s module.
    private func key(_ address: UInt64, _ isReturnAddress: Bool, _ s: ModuleState) -> UInt64? {
        guard let image = s.image else { return nil }
        let a = isReturnAddress && address > s.module.base ? address - 1 : address
        return image.linkAddress(a, moduleBase: s.module.base)
    }

    public func prefetch(_ addresses: [(address: UInt64, isReturnAddress: Bool)], modules: [Module]) {
        var byModule: [ObjectIdentifier: (ModuleState, [UInt64])] = [:]
        var order: [ObjectIdentifier] = []
        for (a, ret) in addresses {
            guard let m = modules.first(where: { $0.contains(a) }) else { continue }
            let s = state(for: m)
            guard let k = key(a, ret, s), s.cache[k] == nil else { continue }
            let id = ObjectIdentifier(s)
            if byModule[id] == nil { byModule[id] = (s, []); order.append(id) }
            byModule[id]!.1.append(k)
        }
        for id in order {
            let (s, keys) = byModule[id]!
            resolve(Array(Set(keys)).sorted(), in: s)
        }
    }

    private func resolve(_ keys: [UInt64], in s: ModuleState) {
        var answers: [[SourcePlace]]?
        if let r = resolver(for: s) {
            answers = r.resolve(keys)
            if answers == nil {
                note("\(s.file ?? s.module.path): the symbolizer stopped answering; frames show function names only")
                s.resolver = nil
            }
        }
        for (i, k) in keys.enumerated() {
            var frames = answers?[i] ?? []
            if frames.isEmpty || frames.last?.function == nil, let sym = symbolName(k, in: s) {
                // The symbol table names what the debug info could not.
                if frames.isEmpty { frames = [SourcePlace(function: sym)] } else { frames[frames.count - 1].function = sym }
            }
            s.cache[k] = frames
        }
    }

    private func symbolName(_ linkAddress: UInt64, in s: ModuleState) -> String? {
        if s.symbols == nil { s.symbols = s.image?.functionSymbols() ?? [] }
        return elfSymbol(covering: linkAddress, in: s.symbols!)?.name
    }

    /// The source locations of an address, innermost inlined call first (empty when
    /// nothing is known).
    public func locations(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [SourcePlace] {
        guard let m = modules.first(where: { $0.contains(address) }) else { return [] }
        let s = state(for: m)
        guard let k = key(address, isReturnAddress, s) else { return [] }
        if s.cache[k] == nil { resolve([k], in: s) }
        return s.cache[k] ?? []
    }

    /// Stops the helper processes (they also stop when the symbolizer is dropped).
    public func close() {
        for s in states.values {
            (s.resolver as? LLVMSymbolizerProcess)?.stop()
            s.resolver = nil
        }
    }
}
