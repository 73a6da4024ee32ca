import PowercutTrace

// Symbolization: one frame type (`StackFrame`), one protocol a debug-info source
// implements (`Symbolizer`), and one resolution path (`FrameResolver`) that every output
// uses — check's text report, JSON, SARIF, JUnit, GitHub annotations, suppressions,
// fingerprints, explain and show. The path's two rules:
// - every frame of a stack but the first holds a return address (the instruction after
//   a call), so it is looked up one byte back, where the call is;
// - an address inside inlined code gives one frame per inlined call, innermost first,
//   all with the same address.

/// What the debug info says about one instruction address: the function, file, line
/// and column. Any part may be unknown.
public struct SourcePlace: Equatable, Sendable {
    public var function: String?
    /// As the debug info has it (often absolute).
    public var file: String?
    /// 0: unknown.
    public var line: Int
    public var column: Int

    public init(function: String?, file: String? = nil, line: Int = 0, column: Int = 0) {
        self.function = function
        self.file = file
        self.line = line
        self.column = column
    }

    /// The file's last path component.
    public var fileName: String? { file.map(baseName) }
}

/// Turns addresses into source locations. A symbolizer that knows nothing returns [].
public protocol Symbolizer: AnyObject {
    /// The locations of `address`, innermost inlined call first (empty when unknown).
    /// A return address is looked up one byte back, so that it names the call.
    func locations(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [SourcePlace]
    /// Looks many addresses up at once. Only a hint: looking up works without it.
    func prefetch(_ addresses: [(address: UInt64, isReturnAddress: Bool)], modules: [Module])
    /// What could not be done, one line per module (printed as notes on standard error).
    var notes: [String] { get }
}

extension Symbolizer {
    public func prefetch(_ addresses: [(address: UInt64, isReturnAddress: Bool)], modules: [Module]) {}
    public var notes: [String] { [] }
}

/// One frame of a call stack, as far as the trace's module map and the symbolizer name
/// it. An address inside inlined code gives several frames with that address.
public struct StackFrame: Sendable, Equatable {
    public var address: UInt64
    /// The loaded object that contains the address (from the trace's `module` records).
    public var module: Module?
    /// What the debug info says, nil when nothing.
    public var location: SourcePlace?
    /// An inlined call: the next frame has the same address and holds this call.
    public var isInlined: Bool

    public init(address: UInt64, module: Module?, location: SourcePlace? = nil, isInlined: Bool = false) {
        self.address = address
        self.module = module
        self.location = location
        self.isInlined = isInlined
    }

    public var offset: UInt64? { module.map { address &- $0.base } }
    public var function: String? { location?.function }
    public var file: String? { location?.file }
    /// nil when unknown.
    public var line: Int? { location.flatMap { $0.line > 0 ? $0.line : nil } }
    /// The module's file name without its directory ("libx.so").
    public var moduleName: String? { module.map { baseName($0.path) } }
    /// "libx.so+0x1a2c", nil outside every module.
    public var moduleOffset: String? {
        guard let moduleName, let offset else { return nil }
        return "\(moduleName)+0x\(hex(offset))"
    }
    /// A name that survives ASLR and relinking where it can: "libx.so!function" when the
    /// function is known, else "libx.so+0x1a2c", else "?" (an address in no module says
    /// nothing stable).
    public var stableName: String {
        if let function { return (moduleName.map { $0 + "!" } ?? "") + function }
        return moduleOffset ?? "?"
    }
    /// For people, as Valgrind prints a frame: "function (file.c:88)", "function (in
    /// /path/libx.so)", "libx.so+0x1a2c", or "???" outside every module.
    public var text: String {
        if let function {
            if let name = location?.fileName {
                return "\(function) (\(name)\(line.map { ":\($0)" } ?? ""))"
            }
            if let module { return "\(function) (in \(module.path))" }
            return function
        }
        return moduleOffset ?? "???"
    }
}

/// The one resolution path from a stack's addresses to frames. Without a symbolizer,
/// frames are named by module and offset.
public struct FrameResolver {
    public var symbolizer: (any Symbolizer)?

    public init(_ symbolizer: (any Symbolizer)? = nil) { self.symbolizer = symbolizer }

    /// The frames of one address of a stack (`index` 0 is the innermost; every other
    /// holds a return address): one per inlined call, innermost first.
    public func frames(of address: UInt64, index: Int, modules: [Module]) -> [StackFrame] {
        let module = modules.first { $0.contains(address) }
        let locations = module == nil ? [] : symbolizer?.locations(of: address, isReturnAddress: index > 0, modules: modules) ?? []
        if locations.isEmpty { return [StackFrame(address: address, module: module)] }
        return locations.enumerated().map { k, l in
            StackFrame(address: address, module: module, location: l, isInlined: k < locations.count - 1)
        }
    }

    /// The frames of a stack, innermost first (inlined calls expanded).
    public func frames(_ addresses: [UInt64], modules: [Module]) -> [StackFrame] {
        addresses.enumerated().flatMap { frames(of: $1, index: $0, modules: modules) }
    }

    /// A stack as Valgrind prints it: `at 0x…: function (file.c:88)` for the innermost
    /// frame, `by 0x…: caller (file.c:12)` for the others; an inlined call adds a `by`
    /// line with the same address.
    public func stackText(_ addresses: [UInt64], modules: [Module], indent: String) -> String {
        var out = ""
        for (i, f) in frames(addresses, modules: modules).enumerated() {
            out += "\(indent)\(i == 0 ? "at" : "by") 0x\(hex(f.address)): \(f.text)\n"
        }
        return out
    }

    /// Warms a batching symbolizer with every frame of these stacks.
    public func prefetch(stacks: [[UInt64]], modules: [Module]) {
        guard let symbolizer else { return }
        var seen = Set<UInt64>()
        var wanted: [(address: UInt64, isReturnAddress: Bool)] = []
        for frames in stacks {
            for (i, ip) in frames.enumerated() {
                // Return addresses are keyed one byte back: no clash with a first frame.
                let key = i > 0 ? ip &- 1 : ip
                if seen.insert(key).inserted { wanted.append((ip, i > 0)) }
            }
        }
        if !wanted.isEmpty { symbolizer.prefetch(wanted, modules: modules) }
    }

    /// The symbolizer's notes (modules it could not read).
    public var notes: [String] { symbolizer?.notes ?? [] }
}

/// The last path component.
public func baseName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
