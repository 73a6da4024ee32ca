/// Writes the canonical text form: one record per line, addresses in lower-case hex
/// with 0x, sizes in decimal, optional keys in a fixed order (dst, len, src, name,
/// contract, data, volatile, stack, thread), free text escaped as `\xHH` where a byte
/// would change how the line is read, no comments. Reading a canonical trace and
/// writing it again gives the same bytes, through the binary form or not.
public enum TextFormat {
    public static func line(for record: HeaderRecord) -> String {
        var out: [UInt8] = []
        append(record, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The record for an event; `data` for stores that carry it, `names` to resolve
    /// op, mark and range names, `stacks` for stack definitions.
    public static func line(for e: Event, data: ArraySlice<UInt8>?, names: [String], stacks: [UInt32: [UInt64]]) -> String {
        var out: [UInt8] = []
        append(e, data: data, names: names, stacks: stacks, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ record: HeaderRecord, into out: inout [UInt8]) {
        switch record {
        case .lineSize(let n):
            out += "line-size ".utf8
            decimal(n, into: &out)
        case .domain(let d):
            out += "domain ".utf8
            out += d.description.utf8
        case .pmem(let r):
            out += "pmem ".utf8
            hexNumber(r.base, into: &out)
            out.append(0x20)
            hexNumber(r.length, into: &out)
            if let name = r.name {
                out += " name=".utf8
                TraceText.appendTextField(name, .token, into: &out)
            }
            if r.isVolatile { out += " volatile".utf8 }
        case .module(let m):
            out += "module ".utf8
            TraceText.appendTextField(m.path, .token, into: &out)
            out.append(0x20)
            hexNumber(m.base, into: &out)
            out.append(0x20)
            hexNumber(m.size, into: &out)
            if let id = m.buildID {
                out += " build-id=".utf8
                out += id.utf8
            }
        case .stack(let id, let frames):
            stackLine(id, frames, into: &out)
        case .initial(let address, let data):
            out += "init ".utf8
            hexNumber(address, into: &out)
            out += " data=".utf8
            hexBytes(data[...], into: &out)
        case .meta(let key, let value):
            out += "meta ".utf8
            out += key.utf8
            if !value.isEmpty {
                out.append(0x20)
                TraceText.appendTextField(value, .metaValue, into: &out)
            }
        }
    }

    static func stackLine(_ id: UInt32, _ frames: [UInt64], into out: inout [UInt8]) {
        out += "stack ".utf8
        decimal(UInt64(id), into: &out)
        for f in frames {
            out.append(0x20)
            hexNumber(f, into: &out)
        }
    }

    static func append(_ e: Event, data: ArraySlice<UInt8>?, names: [String], stacks: [UInt32: [UInt64]],
                       into out: inout [UInt8]) {
        func name(_ i: UInt32) -> String { i > 0 && Int(i) <= names.count ? names[Int(i) - 1] : "" }
        switch e.kind {
        case .store, .ntstore:
            out += e.kind.keyword.utf8
            out.append(0x20)
            hexNumber(e.address, into: &out)
            out.append(0x20)
            decimal(e.size, into: &out)
            if e.hasData, let data {
                out += " data=".utf8
                hexBytes(data, into: &out)
            }
        case .clwb, .clflushopt, .clflush:
            out += e.kind.keyword.utf8
            out.append(0x20)
            hexNumber(e.address, into: &out)
        case .sfence, .mfence, .fence, .wpqflush:
            out += e.kind.keyword.utf8
        case .opBegin:
            out += "op ".utf8
            decimal(e.op, into: &out)
            out += " begin dst=".utf8
            hexNumber(e.address, into: &out)
            out += " len=".utf8
            decimal(e.size, into: &out)
            if e.hasSource {
                out += " src=".utf8
                hexNumber(e.source, into: &out)
            }
            if e.name != 0 {
                out += " name=".utf8
                TraceText.appendTextField(name(e.name), .token, into: &out)
            }
            if e.hasExplicitContract {
                out += " contract=".utf8
                out += e.contract.description.utf8
            }
        case .opEnd:
            out += "op ".utf8
            decimal(e.op, into: &out)
            out += " end".utf8
        case .durable:
            out += "durable ".utf8
            hexNumber(e.address, into: &out)
            out.append(0x20)
            decimal(e.size, into: &out)
        case .mark:
            out += "mark ".utf8
            TraceText.appendTextField(name(e.name), .token, into: &out)
        case .pmem:
            out += "pmem ".utf8
            hexNumber(e.address, into: &out)
            out.append(0x20)
            hexNumber(e.size, into: &out)
            if e.name != 0 {
                out += " name=".utf8
                TraceText.appendTextField(name(e.name), .token, into: &out)
            }
            if e.isVolatile { out += " volatile".utf8 }
        case .pmemRelease:
            out += "pmem-release ".utf8
            hexNumber(e.address, into: &out)
            out.append(0x20)
            hexNumber(e.size, into: &out)
        case .stackDefinition:
            let id = UInt32(truncatingIfNeeded: e.address)
            stackLine(id, stacks[id] ?? [], into: &out)
            return
        }
        if e.stack != 0 {
            out += " stack=".utf8
            decimal(UInt64(e.stack), into: &out)
        }
        if e.thread != 0 {
            out += " thread=".utf8
            decimal(UInt64(e.thread), into: &out)
        }
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    @inline(__always)
    static func hexNumber(_ v: UInt64, into out: inout [UInt8]) {
        out.append(0x30)
        out.append(0x78)
        if v == 0 {
            out.append(0x30)
            return
        }
        var shift = (63 - v.leadingZeroBitCount) & ~3
        while shift >= 0 {
            out.append(digits[Int((v >> UInt64(shift)) & 15)])
            shift -= 4
        }
    }

    @inline(__always)
    static func decimal(_ v: UInt64, into out: inout [UInt8]) {
        if v < 10 {
            out.append(0x30 + UInt8(v))
            return
        }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &tmp) { b in
            var i = 24
            var x = v
            while x > 0 {
                i -= 1
                b[i] = 0x30 + UInt8(x % 10)
                x /= 10
            }
            out.append(contentsOf: b[i..<24])
        }
    }

    static func hexBytes(_ data: ArraySlice<UInt8>, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + data.count * 2)
        for b in data {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
    }
}

/// Streams a trace out in the text form.
public final class TextTraceWriter: TraceSink {
    private let out: OutputFile
    private var line: [UInt8] = []
    private var check = WriterChecks()

    public init(_ out: OutputFile) { self.out = out }

    public func begin(_ header: TraceHeader) throws(TraceError) {
        try check.header(header, file: out.path)
        try out.write("powercut-trace \(TraceVersion.text)\n")
        for r in header.records {
            line.removeAll(keepingCapacity: true)
            TextFormat.append(r, into: &line)
            line.append(0x0A)
            try out.write(line)
        }
    }

    public func write(_ batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) throws(TraceError) {
        try check.names(names, file: out.path)
        for e in batch.events {
            try check.event(e, names: names, file: out.path)
            line.removeAll(keepingCapacity: true)
            TextFormat.append(e, data: e.hasData ? batch.data(of: e) : nil, names: names, stacks: stacks, into: &line)
            line.append(0x0A)
            try out.write(line)
        }
    }

    public func end(eventCount: UInt64) throws(TraceError) {
        try out.commit()
    }
}

/// What a writer refuses before it writes: strings its reader would reject (a meta key
/// with a space, a string over the limit, an empty module path or mark name). Checked
/// on the way out, so no form ever holds a trace that its reader rejects.
struct WriterChecks {
    private var checkedNames = 0

    func header(_ header: TraceHeader, file: String) throws(TraceError) {
        for r in header.records {
            if let problem = TraceValidator.stringProblem(r) { throw refuse(problem, file) }
            if case .initial(let a, let data) = r, data.isEmpty || UInt64(data.count) > TraceValidator.maxInitLength {
                throw refuse("init at 0x\(hex(a)) holds \(data.count) bytes (expected 1 to \(TraceValidator.maxInitLength))", file)
            }
        }
    }

    mutating func names(_ names: [String], file: String) throws(TraceError) {
        while checkedNames < names.count {
            if let problem = TraceValidator.stringProblem(names[checkedNames], .name) { throw refuse(problem, file) }
            checkedNames += 1
        }
    }

    @inline(__always)
    func event(_ e: Event, names: [String], file: String) throws(TraceError) {
        if e.runLength != 1 {
            // Only a reader asked to coalesce makes these, for a replay; a writer gets each store.
            throw refuse("event #\(e.seq) stands for a run of \(e.runLength) stores (write each: Event.member)", file)
        }
        guard e.kind.isMarker else { return }
        if e.kind == .mark || e.kind == .opBegin || e.kind == .pmem, e.name != 0 || e.kind == .mark {
            if Int(e.name) > names.count { throw refuse("event #\(e.seq) names name \(e.name) of \(names.count)", file) }
            if e.kind == .mark && (e.name == 0 || names[Int(e.name) - 1].isEmpty) {
                throw refuse("mark #\(e.seq) has an empty name (a mark names a point; give it a name)", file)
            }
        }
    }

    private func refuse(_ problem: String, _ file: String) -> TraceError {
        TraceError(file: file, "cannot write this trace: \(problem)")
    }
}

/// Where a converted or recorded trace goes: the text or the binary form.
public protocol TraceSink: AnyObject {
    func begin(_ header: TraceHeader) throws(TraceError)
    func write(_ batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) throws(TraceError)
    func end(eventCount: UInt64) throws(TraceError)
}
