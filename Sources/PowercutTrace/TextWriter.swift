/// Writes the canonical text form: one record per line, addresses in lower-case hex
/// with 0x, sizes in decimal, optional keys in a fixed order (dst, len, src, name,
/// contract, data, stack), no comments. Reading a canonical trace and writing it again
/// gives the same bytes, through the binary form or not.
public enum TextFormat {
    public static func line(for record: HeaderRecord) -> String {
        switch record {
        case .lineSize(let n): return "line-size \(n)"
        case .domain(let d): return "domain \(d)"
        case .pmem(let r):
            var s = "pmem 0x\(hex(r.base)) 0x\(hex(r.length))"
            if let name = r.name { s += " name=\(name)" }
            if r.isVolatile { s += " volatile" }
            return s
        case .module(let m):
            var s = "module \(escapePath(m.path)) 0x\(hex(m.base)) 0x\(hex(m.size))"
            if let id = m.buildID { s += " build-id=\(id)" }
            return s
        case .stack(let id, let frames):
            return stackLine(id, frames)
        case .initial(let address, _):
            return "init 0x\(hex(address))" // TODO(trace): data=
        case .meta(let key, let value):
            return value.isEmpty ? "meta \(key)" : "meta \(key) \(value)"
        }
    }

    static func stackLine(_ id: UInt32, _ frames: [UInt64]) -> String {
        var s = "stack \(id)"
        for f in frames { s += " 0x\(hex(f))" }
        return s
    }

    /// The record for an event; `data` for stores that carry it, `names` to resolve an
    /// op's name, `stacks` for stack definitions.
    public static func line(for e: Event, data: ArraySlice<UInt8>?, names: [String], stacks: [UInt32: [UInt64]]) -> String {
        var s: String
        switch e.kind {
        case .store, .ntstore:
            s = "\(e.kind.keyword) 0x\(hex(e.address)) \(e.size)"
            if e.hasData, let data {
                s += " data="
                s.reserveCapacity(s.utf8.count + data.count * 2 + 16)
                for b in data {
                    s.unicodeScalars.append(hexScalars[Int(b >> 4)])
                    s.unicodeScalars.append(hexScalars[Int(b & 15)])
                }
            }
        case .clwb, .clflushopt, .clflush:
            s = "\(e.kind.keyword) 0x\(hex(e.address))"
        case .sfence, .mfence, .fence, .wpqflush:
            s = e.kind.keyword
        case .opBegin:
            s = "op \(e.op) begin dst=0x\(hex(e.address)) len=\(e.size)"
            if e.hasSource { s += " src=0x\(hex(e.source))" }
            if e.name != 0 { s += " name=\(names[Int(e.name) - 1])" }
            if e.hasExplicitContract { s += " contract=\(e.contract)" }
        case .opEnd:
            s = "op \(e.op) end"
        case .durable:
            s = "durable 0x\(hex(e.address)) \(e.size)"
        case .mark, .pmem, .pmemRelease:
            s = e.kind.keyword // TODO(trace): write the new records
        case .stackDefinition:
            let id = UInt32(e.address)
            return stackLine(id, stacks[id] ?? [])
        }
        if e.stack != 0 { s += " stack=\(e.stack)" }
        return s
    }

    private static let hexScalars: [Unicode.Scalar] = Array("0123456789abcdef".unicodeScalars)
}

/// Streams a trace out in the text form.
public final class TextTraceWriter: TraceSink {
    private let out: OutputFile

    public init(_ out: OutputFile) { self.out = out }

    public func begin(_ header: TraceHeader) throws(TraceError) {
        try out.write("powercut-trace \(TraceVersion.text)\n")
        for r in header.records { try out.write(TextFormat.line(for: r) + "\n") }
    }

    public func write(_ batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) throws(TraceError) {
        for e in batch.events {
            let data = e.hasData ? batch.data(of: e) : nil
            try out.write(TextFormat.line(for: e, data: data, names: names, stacks: stacks) + "\n")
        }
    }

    public func end(eventCount: UInt64) throws(TraceError) {
        try out.commit()
    }
}

/// Where a converted or recorded trace goes: the text or the binary form.
public protocol TraceSink: AnyObject {
    func begin(_ header: TraceHeader) throws(TraceError)
    func write(_ batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) throws(TraceError)
    func end(eventCount: UInt64) throws(TraceError)
}
