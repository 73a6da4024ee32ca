import PowercutModel
import PowercutSymbolize
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

extension FrameResolver {
    /// The frames of one of the trace's stacks, innermost first (empty for stack 0).
    public func frames(_ stack: UInt32, in trace: CheckedTrace) -> [StackFrame] {
        frames(trace.frames(stack), modules: trace.header.modules)
    }

    /// Warms the symbolizer with every stack the findings of these traces name.
    public func prefetch(_ traces: [CheckedTrace]) {
        for t in traces {
            var ids = Set<UInt32>()
            for f in t.result.findings {
                ids.insert(f.stack)
                for r in f.ranges { ids.insert(r.stack) }
            }
            ids.remove(0)
            prefetch(stacks: ids.sorted().map { t.frames($0) }, modules: t.header.modules)
        }
    }
}
