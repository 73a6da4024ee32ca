import PowercutModel
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

// Where a finding is: its call stack's frames as far as the trace's module map and a
// symbolizer can name them, and the line of an event in a text trace. The CI printers
// (SARIF, GitHub annotations), suppressions and fingerprints all ask these questions.

/// What a symbolizer knows about one instruction address: the function it is in and
/// its source line. Any part may be unknown.
public struct SourcePlace: Sendable, Equatable {
    public var function: String?
    public var file: String?
    public var line: Int?

    public init(function: String? = nil, file: String? = nil, line: Int? = nil) {
        self.function = function
        self.file = file
        self.line = line
    }
}

/// The one question the CI printers ask a symbolizer: function, file and line of an
/// address. A DWARF or symbol-table symbolizer plugs in by conforming with one method;
/// without one, frames are named by module and offset only (and `fun:` suppression
/// lines match nothing).
public protocol FrameSourceLookup {
    /// What is known of `address` (for a symbolizer that sees inlining: the innermost
    /// inlined frame), nil when nothing is. `isReturnAddress` is true for every frame
    /// of a stack but the first: a caller's frame holds the address after its call.
    func source(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> SourcePlace?
}

/// One frame of a call stack, resolved as far as the trace and the symbolizer allow.
public struct ResolvedFrame: Sendable, Equatable {
    public var address: UInt64
    /// The loaded object that contains the address (from the trace's `module` records).
    public var module: Module?
    public var source: SourcePlace?

    public var offset: UInt64? { module.map { address &- $0.base } }
    public var function: String? { source?.function }
    /// The module's file name without its directory ("libx.so").
    public var moduleName: String? { module.map { baseName($0.path) } }
    /// "libx.so+0x1a2c", nil outside every module.
    public var moduleOffset: String? {
        guard let moduleName, let offset else { return nil }
        return "\(moduleName)+0x\(hex(offset))"
    }
    /// A name that survives ASLR and relinking where it can: "libx.so!function" when the
    /// symbolizer names the function, else "libx.so+0x1a2c", else "?" (an address in no
    /// module says nothing stable).
    public var stableName: String {
        if let function { return (moduleName.map { $0 + "!" } ?? "") + function }
        return moduleOffset ?? "?"
    }
    /// For people: "function (file.c:88)", "function", "libx.so+0x1a2c", or nil.
    public var description: String? {
        if let function {
            if let file = source?.file { return "\(function) (\(baseName(file))\(source?.line.map { ":\($0)" } ?? ""))" }
            return function
        }
        return moduleOffset
    }
}

/// Resolves stack frames with the trace's module map and an optional source lookup.
/// It is also a `Symbolizer`, so the Valgrind-style text printed inside JUnit failures
/// names frames the same way the SARIF and GitHub output do.
public struct FrameResolver: Symbolizer {
    public var lookup: (any FrameSourceLookup)?

    public init(lookup: (any FrameSourceLookup)? = nil) { self.lookup = lookup }

    public func resolve(_ address: UInt64, isReturnAddress: Bool = false, modules: [Module]) -> ResolvedFrame {
        ResolvedFrame(address: address, module: modules.first { $0.contains(address) },
                      source: lookup?.source(of: address, isReturnAddress: isReturnAddress, modules: modules))
    }

    /// The frames of a stack, innermost first (empty for stack 0).
    public func frames(_ stack: UInt32, in trace: CheckedTrace) -> [ResolvedFrame] {
        let modules = trace.header.modules
        return trace.frames(stack).enumerated().map { resolve($1, isReturnAddress: $0 > 0, modules: modules) }
    }

    public func describe(_ address: UInt64, modules: [Module]) -> String? {
        resolve(address, modules: modules).description
    }
}

extension Finding {
    /// The stack that says where the finding comes from: that of the store that left
    /// the first byte range, or the deciding event's own for findings without ranges
    /// (flush notes, missing-drain). 0 when there is none.
    public var originStack: UInt32 { ranges.first.map(\.stack) ?? stack }

    /// The event to point at in the trace: the store that left the first byte range,
    /// else the deciding event (nil at the end of the trace).
    public var originEvent: UInt64? { ranges.first?.event ?? event }
}

/// Line numbers of events in a text trace, so annotations can point into the trace
/// when no source line is known.
public enum TraceLines {
    /// Records that are not numbered events.
    private static let nonEvents: Set<String> = ["powercut-trace", "line-size", "domain", "pmem", "module", "meta", "stack"]

    /// The 1-based line of each wanted event number (`#N`) in a text trace's bytes.
    public static func lines(of wanted: Set<UInt64>, in bytes: some Sequence<UInt8>) -> [UInt64: Int] {
        var scanner = Scanner(wanted: wanted)
        for b in bytes where !scanner.feed(b) { break }
        scanner.finishLine()
        return scanner.found
    }

    /// The same for a trace file; empty when the file cannot be read (the lines are a
    /// convenience, never a reason to fail).
    public static func lines(of wanted: Set<UInt64>, inFile path: String) -> [UInt64: Int] {
        guard !wanted.isEmpty else { return [:] }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [:] }
        defer { close(fd) }
        var scanner = Scanner(wanted: wanted)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        reading: while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for i in 0..<n where !scanner.feed(buffer[i]) { break reading }
        }
        scanner.finishLine()
        return scanner.found
    }

    /// A byte-at-a-time classifier of lines by their first token.
    private struct Scanner {
        let wanted: Set<UInt64>
        var found: [UInt64: Int] = [:]
        var line = 1
        var seq: UInt64 = 0
        var token: [UInt8] = []
        /// 0: leading blanks, 1: in the first token, 2: the rest of the line.
        var phase = 0

        init(wanted: Set<UInt64>) { self.wanted = wanted }

        /// false once every wanted event has been found.
        mutating func feed(_ b: UInt8) -> Bool {
            if b == 0x0A {
                finishLine()
                line += 1
                return found.count < wanted.count
            }
            let blank = b == 0x20 || b == 0x09 || b == 0x0D
            switch phase {
            case 0:
                if b == 0x23 { phase = 2 } else if !blank { token.append(b); phase = 1 }
            case 1:
                if blank || b == 0x23 { phase = 2 } else if token.count < 32 { token.append(b) }
            default:
                break
            }
            return true
        }

        mutating func finishLine() {
            defer { token.removeAll(keepingCapacity: true); phase = 0 }
            guard !token.isEmpty, !TraceLines.nonEvents.contains(String(decoding: token, as: UTF8.self)) else { return }
            if wanted.contains(seq) { found[seq] = line }
            seq += 1
        }
    }
}

/// The last path component.
func baseName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
