/// Reads the text form (trace-format.md) straight out of the input buffer: no
/// per-line strings, one pass, errors with file:line and the offending text.
final class TextTraceReader {
    private let input: ByteInput
    private var validator = TraceValidator()
    private var lineNumber = 0
    private var seq: UInt64 = 0
    private(set) var header = TraceHeader()
    private(set) var names: [String] = []
    private var nameIndex: [String: UInt32] = [:]
    /// The first event, read while looking for the end of the header.
    private var pending: Event?
    private var pendingData: [UInt8] = []
    private var finished = false
    /// Token boundaries of the current line, reused.
    private var tokens: [Range<Int>] = []
    private var line = UnsafeBufferPointer<UInt8>(start: nil, count: 0)

    var stacks: [UInt32: [UInt64]] { validator.stacks }

    init(input: ByteInput) throws(TraceError) {
        self.input = input
        tokens.reserveCapacity(64)
        try readHeader()
    }

    private var file: String { input.name }

    private func fail(_ message: String) -> TraceError { .atLine(file, lineNumber, message) }

    // MARK: Lines and tokens

    /// Splits the next non-blank line into tokens; false at the end of the input.
    private func nextRecord() throws(TraceError) -> Bool {
        while let l = try input.nextLine() {
            lineNumber += 1
            line = l
            tokens.removeAll(keepingCapacity: true)
            var i = 0
            let n = l.count
            while i < n {
                let c = l[i]
                if c == 0x23 { break }  // '#'
                if c == 0x20 || c == 0x09 { i += 1; continue }
                let start = i
                while i < n {
                    let d = l[i]
                    if d == 0x20 || d == 0x09 || d == 0x23 { break }
                    i += 1
                }
                tokens.append(start..<i)
            }
            if !tokens.isEmpty { return true }
        }
        return false
    }

    private func text(_ t: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: line[t]), as: UTF8.self)
    }

    private func tokenEquals(_ t: Range<Int>, _ s: StaticString) -> Bool {
        guard t.count == s.utf8CodeUnitCount else { return false }
        let p = s.utf8Start
        for (k, i) in t.enumerated() where line[i] != p[k] { return false }
        return true
    }

    /// Parses a decimal or 0x-hex unsigned 64-bit number.
    private func number(_ t: Range<Int>, _ what: String) throws(TraceError) -> UInt64 {
        if let v = parseNumber(UnsafeBufferPointer(rebasing: line[t])) { return v }
        throw fail("bad number '\(text(t))' for \(what) (expected decimal or 0x-hex, at most 64 bits)")
    }

    private func expectCount(_ lo: Int, _ hi: Int, _ usage: String) throws(TraceError) {
        if tokens.count < lo || tokens.count > hi {
            let what = tokens.count < lo ? "missing fields" : "extra field '\(text(tokens[hi]))'"
            throw fail("\(what) in '\(text(tokens[0]))' record (expected '\(usage)')")
        }
    }

    /// Splits `key=value`; the key's text and the value's token range.
    private func keyValue(_ t: Range<Int>, _ usage: String) throws(TraceError) -> (String, Range<Int>) {
        guard let eq = t.first(where: { line[$0] == 0x3D }) else {
            throw fail("unexpected field '\(text(t))' (expected key=value options: '\(usage)')")
        }
        return (text(t.lowerBound..<eq), (eq + 1)..<t.upperBound)
    }

    // MARK: Header

    private func readHeader() throws(TraceError) {
        guard try nextRecord() else {
            throw TraceError(file: file, "empty trace (the first record must be 'powercut-trace \(TraceVersion.text)')")
        }
        guard tokenEquals(tokens[0], "powercut-trace") else {
            throw fail("missing header: found '\(text(tokens[0]))' where the first record must be 'powercut-trace \(TraceVersion.text)'")
        }
        try expectCount(2, 2, "powercut-trace 1")
        let version = try number(tokens[1], "the format version")
        if version != TraceVersion.text {
            throw fail("unsupported trace version \(version) (this build reads text version \(TraceVersion.text))")
        }
        while try nextRecord() {
            if let record = try headerRecord() {
                if let problem = validator.header(record) { throw fail(problem) }
                header.records.append(record)
            } else {
                var e = try eventRecord()
                e.seq = seq
                if e.kind != .stackDefinition { seq += 1 }
                pending = e
                return
            }
        }
        finished = true
        if let problem = validator.finish() { throw fail(problem) }
    }

    /// A header record, or nil when the line is an event (or a stack between events,
    /// which is read as an event-stream record once events have begun).
    private func headerRecord() throws(TraceError) -> HeaderRecord? {
        let t0 = tokens[0]
        if tokenEquals(t0, "line-size") {
            try expectCount(2, 2, "line-size N")
            return .lineSize(try number(tokens[1], "line-size"))
        }
        if tokenEquals(t0, "domain") {
            try expectCount(2, 2, "domain adr|eadr|wpq")
            guard let d = Domain(name: text(tokens[1])) else {
                throw fail("unknown domain '\(text(tokens[1]))' (expected adr, eadr or wpq)")
            }
            return .domain(d)
        }
        if tokenEquals(t0, "pmem") {
            let usage = "pmem BASE LEN [name=S] [volatile]"
            try expectCount(3, 5, usage)
            var r = PmemRange(base: try number(tokens[1], "pmem BASE"), length: try number(tokens[2], "pmem LEN"))
            for t in tokens.dropFirst(3) {
                if tokenEquals(t, "volatile") {
                    if r.isVolatile { throw fail("'volatile' given twice") }
                    r.isVolatile = true
                    continue
                }
                let (key, value) = try keyValue(t, usage)
                guard key == "name" else { throw fail("unknown key '\(key)' in pmem record (expected name=S or volatile)") }
                if r.name != nil { throw fail("key 'name' given twice") }
                r.name = text(value)
            }
            return .pmem(r)
        }
        if tokenEquals(t0, "module") {
            let usage = "module PATH BASE SIZE [build-id=HEX]"
            try expectCount(4, 5, usage)
            var m = Module(path: unescapePath(text(tokens[1])), base: try number(tokens[2], "module BASE"),
                           size: try number(tokens[3], "module SIZE"))
            if tokens.count == 5 {
                let (key, value) = try keyValue(tokens[4], usage)
                guard key == "build-id" else { throw fail("unknown key '\(key)' in module record (expected build-id=HEX)") }
                let id = text(value)
                guard !id.isEmpty, id.utf8.allSatisfy({ hexDigit($0) != nil }) else {
                    throw fail("bad build-id '\(id)' (expected hex digits)")
                }
                m.buildID = id
            }
            return .module(m)
        }
        if tokenEquals(t0, "stack") {
            if pending != nil || seq > 0 { return nil }
            let (id, frames) = try stackRecord()
            return .stack(id: id, frames: frames)
        }
        if tokenEquals(t0, "meta") {
            guard tokens.count >= 2 else { throw fail("missing fields in 'meta' record (expected 'meta KEY VALUE…')") }
            // The value is the rest of the line as written (minus the comment), spaces folded to one.
            let value = tokens.dropFirst(2).map { text($0) }.joined(separator: " ")
            return .meta(key: text(tokens[1]), value: value)
        }
        if tokenEquals(t0, "powercut-trace") {
            throw fail("'powercut-trace' header repeated (it appears once, as the first record)")
        }
        return nil
    }

    private func stackRecord() throws(TraceError) -> (UInt32, [UInt64]) {
        guard tokens.count >= 3 else { throw fail("missing fields in 'stack' record (expected 'stack ID IP [IP …]')") }
        let id = try number(tokens[1], "stack ID")
        guard id <= UInt64(UInt32.max) else { throw fail("stack ID \(id) is too large (at most \(UInt32.max))") }
        var frames: [UInt64] = []
        frames.reserveCapacity(tokens.count - 2)
        for t in tokens.dropFirst(2) { frames.append(try number(t, "stack IP")) }
        return (UInt32(id), frames)
    }

    // MARK: Events

    /// Reads up to `max` more events into the batch; false once the trace is done.
    func read(into batch: inout EventBatch, max: Int) throws(TraceError) -> Bool {
        if let e = pending {
            pending = nil
            append(e, to: &batch)
        }
        while batch.events.count < max {
            if finished { return !batch.events.isEmpty }
            guard try nextRecord() else {
                finished = true
                if let problem = validator.finish() { throw TraceError(file: file, location: "end", problem) }
                return !batch.events.isEmpty
            }
            if try headerRecord() != nil {
                throw fail("header record '\(text(tokens[0]))' after the first event (move it above the events)")
            }
            var e = try eventRecord()
            e.seq = seq
            if e.kind != .stackDefinition { seq += 1 }
            append(e, to: &batch)
        }
        return true
    }

    private func append(_ e: Event, to batch: inout EventBatch) {
        var e = e
        if e.hasData {
            e.dataOffset = UInt32(batch.data.count)
            batch.data.append(contentsOf: pendingData)
        }
        batch.events.append(e)
    }

    private static let expectedRecords =
        "store, ntstore, clwb, clflushopt, clflush, sfence, mfence, fence, wpqflush, op, durable, stack; or before the events: line-size, domain, pmem, module, meta"

    /// Parses the current line as an event record and validates it.
    private func eventRecord() throws(TraceError) -> Event {
        let t0 = tokens[0]
        var e: Event
        if tokenEquals(t0, "store") || tokenEquals(t0, "ntstore") {
            let kind: EventKind = line[t0.lowerBound] == 0x73 ? .store : .ntstore
            try minFields(3, "\(kind.keyword) ADDR SIZE [data=HEX] [stack=ID]")
            e = Event(kind: kind, address: try number(tokens[1], "ADDR"), size: try number(tokens[2], "SIZE"))
            try options(from: 3, into: &e, allowData: true, usage: "\(kind.keyword) ADDR SIZE [data=HEX] [stack=ID]")
        } else if let kind = writeBackKind(t0) {
            try minFields(2, "\(kind.keyword) ADDR [stack=ID]")
            e = Event(kind: kind, address: try number(tokens[1], "ADDR"))
            try options(from: 2, into: &e, usage: "\(kind.keyword) ADDR [stack=ID]")
        } else if let kind = bareKind(t0) {
            e = Event(kind: kind)
            try options(from: 1, into: &e, usage: "\(kind.keyword) [stack=ID]")
        } else if tokenEquals(t0, "op") {
            e = try opRecord()
        } else if tokenEquals(t0, "durable") {
            try minFields(3, "durable ADDR LEN [stack=ID]")
            e = Event(kind: .durable, address: try number(tokens[1], "ADDR"), size: try number(tokens[2], "LEN"))
            try options(from: 3, into: &e, usage: "durable ADDR LEN [stack=ID]")
        } else if tokenEquals(t0, "stack") {
            let (id, frames) = try stackRecord()
            if let problem = validator.defineStack(id, frames) { throw fail(problem) }
            e = Event(kind: .stackDefinition, address: UInt64(id))
            return e
        } else {
            throw fail("unknown record '\(text(t0))' (expected \(Self.expectedRecords))")
        }
        if let problem = validator.event(e, at: .line(lineNumber)) { throw fail(problem) }
        return e
    }

    private func minFields(_ n: Int, _ usage: String) throws(TraceError) {
        if tokens.count < n { throw fail("missing fields in '\(text(tokens[0]))' record (expected '\(usage)')") }
    }

    private func writeBackKind(_ t: Range<Int>) -> EventKind? {
        if tokenEquals(t, "clwb") { return .clwb }
        if tokenEquals(t, "clflushopt") { return .clflushopt }
        if tokenEquals(t, "clflush") { return .clflush }
        return nil
    }

    private func bareKind(_ t: Range<Int>) -> EventKind? {
        if tokenEquals(t, "sfence") { return .sfence }
        if tokenEquals(t, "mfence") { return .mfence }
        if tokenEquals(t, "fence") { return .fence }
        if tokenEquals(t, "wpqflush") { return .wpqflush }
        return nil
    }

    /// The key=value fields after the positional ones: stack= everywhere, data= on stores.
    private func options(from first: Int, into e: inout Event, allowData: Bool = false, usage: String) throws(TraceError) {
        var sawStack = false
        for t in tokens.dropFirst(first) {
            let (key, value) = try keyValue(t, usage)
            if key == "stack" {
                if sawStack { throw fail("key 'stack' given twice") }
                sawStack = true
                let id = try number(value, "stack=")
                guard id > 0 && id <= UInt64(UInt32.max) else {
                    throw fail("stack=\(id) is not a valid stack ID (expected 1 to \(UInt32.max))")
                }
                e.stack = UInt32(id)
            } else if key == "data" && allowData {
                if e.hasData { throw fail("key 'data' given twice") }
                try parseData(value, size: e.size)
                e.flags |= Event.Flags.hasData
            } else {
                let keys = allowData ? "data=, stack=" : "stack="
                throw fail("unknown key '\(key)' in '\(text(tokens[0]))' record (expected \(keys))")
            }
        }
    }

    private func parseData(_ t: Range<Int>, size: UInt64) throws(TraceError) {
        if UInt64(t.count) != size * 2 {
            throw fail("data= has \(t.count / 2)\(t.count % 2 == 1 ? ".5" : "") bytes for a store of \(size) (expected exactly \(size) bytes, two hex digits each)")
        }
        pendingData.removeAll(keepingCapacity: true)
        var i = t.lowerBound
        while i < t.upperBound {
            guard let hi = hexDigit(line[i]), let lo = hexDigit(line[i + 1]) else {
                throw fail("bad hex in data= near '\(text(i..<min(i + 2, t.upperBound)))' (expected two hex digits per byte)")
            }
            pendingData.append(hi << 4 | lo)
            i += 2
        }
    }

    private func opRecord() throws(TraceError) -> Event {
        let usage = "op ID begin dst=ADDR len=N [src=ADDR] [name=S] [contract=flushcache|persist|none]' or 'op ID end"
        try minFields(3, usage)
        let id = try number(tokens[1], "op ID")
        if tokenEquals(tokens[2], "end") {
            var e = Event(kind: .opEnd)
            e.op = id
            try options(from: 3, into: &e, usage: "op ID end [stack=ID]")
            return e
        }
        guard tokenEquals(tokens[2], "begin") else {
            throw fail("expected 'begin' or 'end' after 'op \(id)', found '\(text(tokens[2]))'")
        }
        var e = Event(kind: .opBegin)
        e.op = id
        var dst: UInt64?, len: UInt64?
        var seen = Set<String>()
        for t in tokens.dropFirst(3) {
            let (key, value) = try keyValue(t, usage)
            if !seen.insert(key).inserted { throw fail("key '\(key)' given twice") }
            switch key {
            case "dst": dst = try number(value, "dst=")
            case "len": len = try number(value, "len=")
            case "src":
                e.source = try number(value, "src=")
                e.flags |= Event.Flags.hasSource
            case "name": e.name = intern(text(value))
            case "contract":
                guard let c = Contract(name: text(value)) else {
                    throw fail("unknown contract '\(text(value))' (expected flushcache, persist or none)")
                }
                e.contract = c
                e.flags |= Event.Flags.explicitContract
            case "stack":
                let s = try number(value, "stack=")
                guard s > 0 && s <= UInt64(UInt32.max) else { throw fail("stack=\(s) is not a valid stack ID") }
                e.stack = UInt32(s)
            default:
                throw fail("unknown key '\(key)' in op record (expected dst=, len=, src=, name=, contract=, stack=)")
            }
        }
        guard let dst else { throw fail("op \(id) begin has no dst= (expected '\(usage)')") }
        guard let len else { throw fail("op \(id) begin has no len= (expected '\(usage)')") }
        e.address = dst
        e.size = len
        return e
    }

    private func intern(_ s: String) -> UInt32 {
        if let i = nameIndex[s] { return i }
        names.append(s)
        let i = UInt32(names.count)
        nameIndex[s] = i
        return i
    }
}

@inline(__always)
func hexDigit(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: c - 0x30
    case 0x61...0x66: c - 0x61 + 10
    case 0x41...0x46: c - 0x41 + 10
    default: nil
    }
}

/// Decimal, or hex with 0x; nil on anything else or on overflow past 64 bits.
func parseNumber(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
    let n = s.count
    if n == 0 { return nil }
    var v: UInt64 = 0
    if n > 2 && s[0] == 0x30 && (s[1] == 0x78 || s[1] == 0x58) {
        if n - 2 > 16 {
            // Leading zeros are fine; more than 16 significant digits is not.
            var i = 2
            while i < n - 16 { if s[i] != 0x30 { return nil }; i += 1 }
        }
        for i in 2..<n {
            guard let d = hexDigit(s[i]) else { return nil }
            v = v << 4 | UInt64(d)
        }
        if n - 2 > 16 { return v }  // checked above
        return v
    }
    for i in 0..<n {
        let c = s[i]
        guard c >= 0x30 && c <= 0x39 else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
        if o1 || o2 { return nil }
        v = a
    }
    return v
}

/// Module paths have no spaces in the text form: a space is written `\x20`.
func unescapePath(_ s: String) -> String {
    s.contains("\\x20") ? s.replacingOccurrences(of: "\\x20", with: " ") : s
}

func escapePath(_ s: String) -> String {
    s.contains(" ") ? s.replacingOccurrences(of: " ", with: "\\x20") : s
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}
