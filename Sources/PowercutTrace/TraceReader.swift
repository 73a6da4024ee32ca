/// The form of a trace file, told apart by content, not by name.
public enum TraceForm: String, Sendable {
    case text
    case binary
}

/// Streams a trace, text or binary, in batches. The header is read when the reader
/// opens; events follow through `read(into:)`. Memory stays bounded by the batch size
/// and the stacks and names the trace defines, whatever the trace's length.
public final class TraceReader {
    private enum Backend {
        case text(TextTraceReader)
        case binary(BinaryTraceReader)
    }

    private let backend: Backend
    public let file: String
    public let form: TraceForm

    /// Opens `path` (`-` for standard input) and reads its header.
    public convenience init(path: String) throws(TraceError) {
        try self.init(input: try ByteInput(path: path))
    }

    /// Reads a trace held in memory; `name` stands for the file in messages.
    public convenience init(bytes: [UInt8], name: String = "<memory>") throws(TraceError) {
        try self.init(input: ByteInput(bytes: bytes, name: name))
    }

    /// Reads a text trace held in a string.
    public convenience init(text: String, name: String = "<memory>") throws(TraceError) {
        try self.init(bytes: Array(text.utf8), name: name)
    }

    private init(input: ByteInput) throws(TraceError) {
        let path = input.name
        file = path
        let isBinary = try input.ensure(BinaryFormat.magic.count)
            && (0..<BinaryFormat.magic.count).allSatisfy { input.buffer[input.position + $0] == BinaryFormat.magic[$0] }
        if isBinary {
            form = .binary
            backend = .binary(try BinaryTraceReader(input: input))
        } else {
            form = .text
            if try input.ensure(1), input.buffer[input.position] >= 0x80 && input.buffer[input.position] != 0xEF {
                throw TraceError(file: path, "not a powercut trace (binary content without the powercut magic; expected a text trace starting 'powercut-trace 1' or a binary trace)")
            }
            backend = .text(try TextTraceReader(input: input))
        }
    }

    /// The text backend, for tests that compare its fast and general paths.
    var textReader: TextTraceReader? {
        if case .text(let r) = backend { r } else { nil }
    }

    public var header: TraceHeader {
        switch backend {
        case .text(let r): r.header
        case .binary(let r): r.header
        }
    }

    /// The stacks defined so far (all of them once the trace is read).
    public var stacks: [UInt32: [UInt64]] {
        switch backend {
        case .text(let r): r.stacks
        case .binary(let r): r.stacks
        }
    }

    /// Interned op names; `Event.name` is an index + 1 into this.
    public var names: [String] {
        switch backend {
        case .text(let r): r.names
        case .binary(let r): r.names
        }
    }

    /// Whether a run of back-to-back stores whose records are identical but for their
    /// place (a copy loop's body, say) comes as one event whose `runLength` counts them,
    /// for a replay that applies the run whole (`Replayer.acceptsStoreRuns`). Off by
    /// default: every consumer but the replayer wants each event. Binary traces only;
    /// a text trace gives each store on its own either way.
    public var coalescesStoreRuns: Bool {
        get {
            if case .binary(let r) = backend { r.coalescesStoreRuns } else { false }
        }
        set {
            if case .binary(let r) = backend { r.coalescesStoreRuns = newValue }
        }
    }

    /// Replaces the batch's contents with up to `max` further events. Returns false
    /// when the trace has no more.
    public func read(into batch: inout EventBatch, max: Int = 4096) throws(TraceError) -> Bool {
        batch.removeAll()
        switch backend {
        case .text(let r): return try r.read(into: &batch, max: max)
        case .binary(let r): return try r.read(into: &batch, max: max)
        }
    }

    /// The 1-based line of each wanted event (`#N`) in a text trace, found by reading
    /// on from here (stack definitions are not events). Empty for a binary trace. A
    /// trace that turns out malformed gives the lines found before the error: lines
    /// are a convenience for pointing into the trace, never a reason to fail.
    public func eventLines(of wanted: Set<UInt64>) -> [UInt64: Int] {
        guard case .text(let r) = backend, !wanted.isEmpty else { return [:] }
        r.recordsLines = true
        defer { r.recordsLines = false }
        var found: [UInt64: Int] = [:]
        var batch = EventBatch()
        func take() {
            for (e, line) in zip(batch.events, r.lines) where e.kind != .stackDefinition && wanted.contains(e.seq) {
                found[e.seq] = line
            }
        }
        do {
            while try read(into: &batch) {
                take()
                if found.count == wanted.count { break }
            }
        } catch {
            take()  // the events read before the error
        }
        return found
    }
}

/// A whole trace in memory: for traces built by the recorder or by tests, and small
/// enough to hold.
public struct Trace: Sendable, Equatable {
    public var header: TraceHeader
    public var events: [Event]
    public var data: [UInt8]
    public var names: [String]
    public var stacks: [UInt32: [UInt64]]

    public init(header: TraceHeader = TraceHeader(), events: [Event] = [], data: [UInt8] = [],
                names: [String] = [], stacks: [UInt32: [UInt64]] = [:]) {
        self.header = header
        self.events = events
        self.data = data
        self.names = names
        self.stacks = stacks
    }

    /// Reads a whole trace file.
    public init(contentsOf path: String) throws(TraceError) {
        try self.init(reader: try TraceReader(path: path))
    }

    /// Reads a whole trace from a reader.
    public init(reader: TraceReader) throws(TraceError) {
        var batch = EventBatch()
        var events: [Event] = []
        var data: [UInt8] = []
        while try reader.read(into: &batch) {
            for var e in batch.events {
                if e.hasData {
                    let offset = data.count
                    data.append(contentsOf: batch.data(of: e))
                    e.dataOffset = UInt32(offset)
                }
                events.append(e)
            }
        }
        self.init(header: reader.header, events: events, data: data, names: reader.names, stacks: reader.stacks)
    }

    /// Number of numbered events (stack definitions excluded).
    public var eventCount: Int { events.lazy.filter { $0.kind != .stackDefinition }.count }

    /// The trace as one batch, for the replayer and writers.
    public var batch: EventBatch {
        var b = EventBatch()
        b.events = events
        b.data = data
        return b
    }

    /// Writes the trace to `path` crash-safely in the given form.
    public func write(to path: String, form: TraceForm) throws(TraceError) {
        let out = try OutputFile(path: path)
        let sink: TraceSink = form == .text ? TextTraceWriter(out) : BinaryTraceWriter(out)
        try sink.begin(header)
        try sink.write(batch, names: names, stacks: stacks)
        try sink.end(eventCount: UInt64(eventCount))
    }

    /// The canonical text form.
    public var text: String {
        var s = "powercut-trace \(TraceVersion.text)\n"
        for r in header.records { s += TextFormat.line(for: r) + "\n" }
        let b = batch
        for e in events {
            s += TextFormat.line(for: e, data: e.hasData ? b.data(of: e) : nil, names: names, stacks: stacks) + "\n"
        }
        return s
    }
}

/// Copies a trace from one form to the other (or the same), streaming.
public func convertTrace(from input: String, to output: String, form: TraceForm) throws(TraceError) {
    let reader = try TraceReader(path: input)
    let out = try OutputFile(path: output)
    let sink: TraceSink = form == .text ? TextTraceWriter(out) : BinaryTraceWriter(out)
    try sink.begin(reader.header)
    var batch = EventBatch()
    var count: UInt64 = 0
    while try reader.read(into: &batch) {
        try sink.write(batch, names: reader.names, stacks: reader.stacks)
        for e in batch.events where e.kind != .stackDefinition { count += 1 }
    }
    try sink.end(eventCount: count)
}
