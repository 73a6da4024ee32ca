import PowercutModel
import PowercutSymbolize
import PowercutTrace

/// `powercut show`: every record of a trace in order, readable. The header records as
/// the text form writes them; then each event numbered `#N`, indented inside its op,
/// with its stack symbolized (`at`/`by` lines). Data longer than `dataBytes` is cut.
public struct TraceDump {
    public var frames: FrameResolver
    /// At most this many bytes of a store's data are shown (0: none).
    public var dataBytes: Int

    public init(frames: FrameResolver = FrameResolver(), dataBytes: Int = 32) {
        self.frames = frames
        self.dataBytes = dataBytes
    }

    /// Streams the dump of what `reader` reads to `emit`, a chunk at a time.
    public func render(_ reader: TraceReader, emit: (String) -> Void) throws(TraceError) {
        let header = reader.header
        let modules = header.modules
        var out = "== \(reader.file): \(reader.form) trace, version \(reader.form == .text ? TraceVersion.text : TraceVersion.binary)\n"
        out += "powercut-trace \(TraceVersion.text)\n"
        for r in header.records { out += TextFormat.line(for: r) + "\n" }
        // The stacks the header defines, looked up in one go.
        frames.prefetch(stacks: reader.stacks.keys.sorted().compactMap { reader.stacks[$0] }, modules: modules)
        emit(out)

        var batch = EventBatch()
        var openOp: UInt64?
        var count: UInt64 = 0
        while try reader.read(into: &batch) {
            // Stacks defined between events: looked up a batch at a time.
            let defined = batch.events.filter { $0.kind == .stackDefinition }.compactMap { reader.stacks[UInt32($0.address)] }
            if !defined.isEmpty { frames.prefetch(stacks: defined, modules: modules) }
            out = ""
            for e in batch.events {
                if e.kind == .stackDefinition {
                    out += String(repeating: " ", count: 7 + (openOp == nil ? 0 : 2))
                    out += TextFormat.line(for: e, data: nil, names: reader.names, stacks: reader.stacks) + "\n"
                    continue
                }
                count += 1
                if e.kind == .opEnd { openOp = nil }
                let indent = openOp == nil ? 0 : 2
                let number = "#\(e.seq)"
                out += number + String(repeating: " ", count: max(1, 7 - number.count) + indent)
                out += record(e, batch: batch, names: reader.names, stacks: reader.stacks) + "\n"
                if e.stack != 0 {
                    out += frames.stackText(reader.stacks[e.stack] ?? [], modules: modules,
                                                indent: String(repeating: " ", count: 10 + indent))
                }
                if e.kind == .opBegin { openOp = e.op }
            }
            emit(out)
        }
        emit("== \(count) event\(count == 1 ? "" : "s")\n")
    }

    /// The record in the text form, with long data cut short.
    func record(_ e: Event, batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) -> String {
        guard e.hasData, e.kind.isStore else { return TextFormat.line(for: e, data: nil, names: names, stacks: stacks) }
        var plain = e
        plain.flags &= ~Event.Flags.hasData
        plain.stack = 0
        var s = TextFormat.line(for: plain, data: nil, names: names, stacks: stacks)
        if dataBytes > 0 {
            let data = batch.data(of: e)
            s += " data="
            for b in data.prefix(dataBytes) {
                s += b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16)
            }
            if data.count > dataBytes { s += "…(\(count(data.count, "byte")))" }
        }
        if e.stack != 0 { s += " stack=\(e.stack)" }
        return s
    }
}
