import PowercutModel
import PowercutTrace

/// One trace as the printers see it: where it came from, what it declares and what the
/// replay found.
public struct CheckedTrace: Sendable {
    public var file: String
    public var form: TraceForm
    public var header: TraceHeader
    public var stacks: [UInt32: [UInt64]]
    public var result: ReplayResult

    public init(file: String, form: TraceForm, header: TraceHeader, stacks: [UInt32: [UInt64]], result: ReplayResult) {
        self.file = file
        self.form = form
        self.header = header
        self.stacks = stacks
        self.result = result
    }

    /// The frames of a stack, innermost first (empty for none).
    public func frames(_ stack: UInt32) -> [UInt64] { stack == 0 ? [] : stacks[stack] ?? [] }
}

/// Totals over every trace of a run.
public struct Summary: Sendable, Equatable {
    public var traces = 0
    public var events: UInt64 = 0
    public var errors = 0
    public var warnings = 0
    public var notes = 0

    public init() {}

    public init(_ traces: [CheckedTrace]) {
        for t in traces { add(t.result) }
    }

    public mutating func add(_ r: ReplayResult) {
        traces += 1
        events += r.events
        errors += r.errors
        warnings += r.warnings
        notes += r.notes
    }

    public var line: String {
        "\(traces) trace\(traces == 1 ? "" : "s"), \(events) event\(events == 1 ? "" : "s"): "
            + "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s"), \(notes) note\(notes == 1 ? "" : "s")"
    }
}

/// Turns an instruction address into words. The default names the module and offset
/// from the trace's module map; a symbolizer can do better.
public protocol Symbolizer {
    /// "function (file.c:88)" or "libfoo.so+0x1a2c", nil when nothing is known.
    func describe(_ address: UInt64, modules: [Module]) -> String?
}

public struct ModuleOffsetSymbolizer: Symbolizer {
    public init() {}
    public func describe(_ address: UInt64, modules: [Module]) -> String? {
        guard let m = modules.first(where: { $0.contains(address) }) else { return nil }
        let name = m.path.split(separator: "/").last.map(String.init) ?? m.path
        return "\(name)+0x\(hex(address - m.base))"
    }
}
