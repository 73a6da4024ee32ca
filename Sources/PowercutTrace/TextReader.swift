import Glibc

/// Reads the text form (Docs/trace-format.md) straight out of the input buffer: no
/// per-line strings, one pass, errors with file:line and the offending text (at most
/// 80 bytes of it, escaped).
final class TextTraceReader {
    // Internal rather than private: the fast path (TextFastPath.swift) shares them.
    let input: ByteInput
    var validator = TraceValidator()
    var lineNumber = 0
    var seq: UInt64 = 0
    private(set) var header = TraceHeader()
    private(set) var names: [String] = []
    private var nameIndex: [String: UInt32] = [:]
    /// The first event, read while looking for the end of the header, and its line.
    private var pending: Event?
    private var pendingLine = 0
    private var pendingData: [UInt8] = []
    private var finished = false
    private var inEvents = false
    /// The current line and its tokens' bounds (offsets into the line), reused.
    private var line = UnsafePointer<UInt8>(bitPattern: 1)!
    private var lineLength = 0
    private var starts: UnsafeMutablePointer<Int>
    private var ends: UnsafeMutablePointer<Int>
    private var tokenCapacity = 64
    private var count = 0
    /// Decoded free text, reused.
    private var scratch: [UInt8] = []
    /// What each byte is to the fast path: a hex digit's value (0-15), or one of the
    /// `FastClass` codes.
    let byteClass: UnsafeMutablePointer<UInt8>
    /// `hexPairTable`, held here so the hot loop does not look the global up.
    let hexPairs = TextTraceReader.hexPairTable
    /// Op names as written (escapes and all) with their interned index, so the fast
    /// path takes `name=` without decoding: the general path fills it.
    var rawNames: [(raw: [UInt8], index: UInt32)] = []
    /// Where the fast path may read: see `fastEvents`.
    var fastZone = FastZone()
    /// Off in tests, to compare the two paths; the events the fast path took.
    var fastPathEnabled = true
    var fastEventCount = 0
    /// Whether `read` records the line of each event in `lines`.
    var recordsLines = false
    /// The 1-based line of each event of the last batch (when `recordsLines`).
    var lines: [Int] = []

    var stacks: [UInt32: [UInt64]] { validator.stacks }

    init(input: ByteInput) throws(TraceError) {
        self.input = input
        starts = .allocate(capacity: tokenCapacity)
        ends = .allocate(capacity: tokenCapacity)
        byteClass = Self.makeByteClasses()
        try readHeader()
    }

    deinit {
        byteClass.deallocate()
        starts.deallocate()
        ends.deallocate()
    }

    private var file: String { input.name }

    private func fail(_ message: String) -> TraceError { .atLine(file, lineNumber, message) }

    // MARK: Lines and tokens

    /// Splits the next non-blank line into tokens; false at the end of the input.
    private func nextRecord() throws(TraceError) -> Bool {
        while let l = try input.nextLine(maxLength: TraceValidator.maxLineLength) {
            lineNumber += 1
            if try tokenize(l) { return true }
        }
        return false
    }

    /// Splits a line into tokens; false when it has none (blank or a comment).
    private func tokenize(_ l: UnsafeBufferPointer<UInt8>) throws(TraceError) -> Bool {
        guard l.count <= TraceValidator.maxLineLength else { throw lineTooLong(l) }
        let p = l.baseAddress ?? line
        line = p
        lineLength = l.count
        count = 0
        let n = l.count
        var i = 0
        while i < n {
            let c = p[i]
            if c == 0x20 || c == 0x09 { i += 1; continue }
            if c == 0x23 { break }  // '#'
            let start = i
            i += 1
            while i < n {
                let d = p[i]
                if d == 0x20 || d == 0x09 || d == 0x23 { break }
                i += 1
            }
            if count == tokenCapacity { growTokens() }
            starts[count] = start
            ends[count] = i
            count += 1
        }
        return count > 0
    }

    @inline(never)
    private func growTokens() {
        let bigger = tokenCapacity * 2
        let s = UnsafeMutablePointer<Int>.allocate(capacity: bigger), e = UnsafeMutablePointer<Int>.allocate(capacity: bigger)
        s.update(from: starts, count: tokenCapacity)
        e.update(from: ends, count: tokenCapacity)
        starts.deallocate()
        ends.deallocate()
        starts = s
        ends = e
        tokenCapacity = bigger
    }

    @inline(never)
    private func lineTooLong(_ l: UnsafeBufferPointer<UInt8>) -> TraceError {
        fail("line longer than \(TraceValidator.maxLineLength >> 20) MiB, starting '\(TraceText.quote(l))' (no record is that long: the longest, a 1 MiB store with data=, is about 2 MiB; is this a trace?)")
    }

    @inline(__always)
    private func token(_ k: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: line + starts[k], count: ends[k] - starts[k])
    }

    /// A token quoted for a message.
    private func q(_ k: Int) -> String { TraceText.quote(token(k)) }

    private func q(_ t: UnsafeBufferPointer<UInt8>) -> String { TraceText.quote(t) }

    @inline(__always)
    private func equals(_ t: UnsafeBufferPointer<UInt8>, _ s: StaticString) -> Bool {
        t.count == s.utf8CodeUnitCount && memcmp(t.baseAddress!, s.utf8Start, t.count) == 0
    }

    @inline(__always)
    private func tokenIs(_ k: Int, _ s: StaticString) -> Bool { equals(token(k), s) }

    /// Parses a decimal or 0x-hex unsigned 64-bit number.
    @inline(__always)
    private func number(_ t: UnsafeBufferPointer<UInt8>, _ what: @autoclosure () -> String) throws(TraceError) -> UInt64 {
        if let v = parseNumber(t) { return v }
        throw badNumber(t, what())
    }

    @inline(__always)
    private func number(_ k: Int, _ what: @autoclosure () -> String) throws(TraceError) -> UInt64 {
        try number(token(k), what())
    }

    @inline(never)
    private func badNumber(_ t: UnsafeBufferPointer<UInt8>, _ what: String) -> TraceError {
        fail("bad number '\(q(t))' for \(what) (expected decimal or 0x-hex, at most 64 bits)")
    }

    private func expectCount(_ lo: Int, _ hi: Int, _ usage: String) throws(TraceError) {
        if count < lo || count > hi {
            let what = count < lo ? "missing fields" : "extra field '\(q(hi))'"
            throw fail("\(what) in '\(q(0))' record (expected '\(usage)')")
        }
    }

    /// Splits token k as `key=value`.
    @inline(__always)
    private func keyValue(_ k: Int, _ usage: @autoclosure () -> String) throws(TraceError)
        -> (key: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        let t = token(k)
        guard let eq = t.firstIndex(of: 0x3D) else {
            throw fail("unexpected field '\(q(t))' (expected key=value options: '\(usage())')")
        }
        return (UnsafeBufferPointer(rebasing: t[..<eq]), UnsafeBufferPointer(rebasing: t[(eq + 1)...]))
    }

    /// A free-text field: `\xHH` escapes decoded, checked, in display form.
    private func freeText(_ t: UnsafeBufferPointer<UInt8>, _ field: TraceValidator.StringField) throws(TraceError) -> String {
        if TraceText.isPlain(t) {
            if let problem = TraceValidator.stringProblem(t, field) { throw fail(problem) }
            return String(decoding: t, as: UTF8.self)
        }
        if let problem = TraceText.decodeTextField(t, into: &scratch) { throw fail("\(problem) in \(field.what)") }
        return try scratch.withUnsafeBufferPointer { b throws(TraceError) -> String in
            if let problem = TraceValidator.stringProblem(b, field) { throw fail(problem) }
            return TraceText.display(b)
        }
    }

    // MARK: Records

    private enum Keyword {
        case store, ntstore, clwb, clflushopt, clflush, sfence, mfence, fence, wpqflush, op, durable, mark
        case pmem, pmemRelease, stack
        case lineSize, domain, module, initial, meta, magic
        case unknown
    }

    @inline(__always)
    private func keyword() -> Keyword {
        let t = token(0)
        let p = t.baseAddress!
        switch t.count {
        case 2: return p[0] == 0x6F && p[1] == 0x70 ? .op : .unknown
        case 4:
            if equals(t, "clwb") { return .clwb }
            if equals(t, "mark") { return .mark }
            if equals(t, "pmem") { return .pmem }
            if equals(t, "meta") { return .meta }
            if equals(t, "init") { return .initial }
        case 5:
            if equals(t, "store") { return .store }
            if equals(t, "fence") { return .fence }
            if equals(t, "stack") { return .stack }
        case 6:
            if equals(t, "sfence") { return .sfence }
            if equals(t, "mfence") { return .mfence }
            if equals(t, "domain") { return .domain }
            if equals(t, "module") { return .module }
        case 7:
            if equals(t, "ntstore") { return .ntstore }
            if equals(t, "clflush") { return .clflush }
            if equals(t, "durable") { return .durable }
        case 8: if equals(t, "wpqflush") { return .wpqflush }
        case 9: if equals(t, "line-size") { return .lineSize }
        case 10: if equals(t, "clflushopt") { return .clflushopt }
        case 12: if equals(t, "pmem-release") { return .pmemRelease }
        case 14: if equals(t, "powercut-trace") { return .magic }
        default: break
        }
        return .unknown
    }

    private static let expectedRecords =
        "store, ntstore, clwb, clflushopt, clflush, sfence, mfence, fence, wpqflush, op, durable, mark, pmem, pmem-release, stack; or before the events: line-size, domain, module, init, meta"

    // MARK: Header

    private func readHeader() throws(TraceError) {
        guard try nextRecord() else {
            throw TraceError(file: file, "empty trace (the first record must be 'powercut-trace \(TraceVersion.text)')")
        }
        guard keyword() == .magic else {
            throw fail("missing header: found '\(q(0))' where the first record must be 'powercut-trace \(TraceVersion.text)'")
        }
        try expectCount(2, 2, "powercut-trace 1")
        let version = try number(1, "the format version")
        if version != TraceVersion.text {
            throw fail("unsupported trace version \(version) (this build reads text version \(TraceVersion.text))")
        }
        while try nextRecord() {
            let kw = keyword()
            if let record = try headerRecord(kw) {
                if let problem = validator.header(record, at: .line(lineNumber)) { throw fail(problem) }
                header.records.append(record)
            } else {
                try endHeader()
                var e = try eventRecord(kw)
                e.seq = seq
                if e.kind != .stackDefinition { seq += 1 }
                pending = e
                pendingLine = lineNumber
                return
            }
        }
        try endHeader()
        finished = true
        if let problem = validator.finish() { throw TraceError(file: file, location: "end", problem) }
    }

    private func endHeader() throws(TraceError) {
        inEvents = true
        if let (at, problem) = validator.endHeader() {
            throw TraceError(file: file, location: at.errorLocation, problem)
        }
    }

    /// A header record, or nil when the line is an event (or a stack between events).
    private func headerRecord(_ kw: Keyword) throws(TraceError) -> HeaderRecord? {
        switch kw {
        case .lineSize:
            try expectCount(2, 2, "line-size N")
            return .lineSize(try number(1, "line-size"))
        case .domain:
            try expectCount(2, 2, "domain adr|eadr|wpq")
            let t = token(1)
            guard let d = Domain(name: String(decoding: t, as: UTF8.self)) else {
                throw fail("unknown domain '\(q(t))' (expected adr, eadr or wpq)")
            }
            return .domain(d)
        case .pmem:
            let usage = "pmem BASE LEN [name=S] [volatile]"
            try expectCount(3, 5, usage)
            var r = PmemRange(base: try number(1, "pmem BASE"), length: try number(2, "pmem LEN"))
            for k in 3..<count {
                if tokenIs(k, "volatile") {
                    if r.isVolatile { throw fail("'volatile' given twice") }
                    r.isVolatile = true
                    continue
                }
                let (key, value) = try keyValue(k, usage)
                guard equals(key, "name") else { throw fail("unknown key '\(q(key))' in pmem record (expected name=S or volatile)") }
                if r.name != nil { throw fail("key 'name' given twice") }
                r.name = try freeText(value, .name)
            }
            return .pmem(r)
        case .module:
            let usage = "module PATH BASE SIZE [build-id=HEX]"
            try expectCount(4, 5, usage)
            var m = Module(path: try freeText(token(1), .modulePath), base: try number(2, "module BASE"),
                           size: try number(3, "module SIZE"))
            if count == 5 {
                let (key, value) = try keyValue(4, usage)
                guard equals(key, "build-id") else { throw fail("unknown key '\(q(key))' in module record (expected build-id=HEX)") }
                if let problem = TraceValidator.stringProblem(value, .buildID) { throw fail(problem) }
                m.buildID = String(decoding: value, as: UTF8.self)
            }
            return .module(m)
        case .stack:
            let (id, frames) = try stackRecord()
            return .stack(id: id, frames: frames)
        case .initial:
            let usage = "init ADDR data=HEX"
            try expectCount(3, 3, usage)
            let address = try number(1, "init ADDR")
            let (key, value) = try keyValue(2, usage)
            guard equals(key, "data") else { throw fail("unknown key '\(q(key))' in init record (expected data=HEX)") }
            guard value.count % 2 == 0 else { throw fail("data= has an odd number of hex digits (expected two per byte)") }
            guard UInt64(value.count / 2) <= TraceValidator.maxInitLength else {
                throw fail("init at 0x\(hex(address)) holds \(value.count / 2) bytes (at most \(TraceValidator.maxInitLength); split the content over several init records)")
            }
            var data: [UInt8] = []
            try parseHex(value, into: &data)
            return .initial(address: address, data: data)
        case .meta:
            guard count >= 2 else { throw fail("missing fields in 'meta' record (expected 'meta KEY VALUE…')") }
            let key = token(1)
            if let problem = TraceValidator.stringProblem(key, .metaKey) { throw fail(problem) }
            // The value is the rest of the line (minus the comment), words joined by one space.
            var value: [UInt8] = []
            for k in 2..<max(2, count) {
                if k > 2 { value.append(0x20) }
                if let problem = TraceText.decodeTextField(token(k), into: &scratch) { throw fail("\(problem) in meta value") }
                value += scratch
            }
            let v = try value.withUnsafeBufferPointer { b throws(TraceError) -> String in
                if let problem = TraceValidator.stringProblem(b, .metaValue) { throw fail(problem) }
                return TraceText.display(b)
            }
            return .meta(key: String(decoding: key, as: UTF8.self), value: v)
        case .magic:
            throw fail("'powercut-trace' header repeated (it appears once, as the first record)")
        default:
            return nil
        }
    }

    private func stackRecord() throws(TraceError) -> (UInt32, [UInt64]) {
        guard count >= 3 else { throw fail("missing fields in 'stack' record (expected 'stack ID IP [IP …]')") }
        let id = try number(1, "stack ID")
        guard id <= UInt64(UInt32.max) else { throw fail("stack ID \(id) is too large (at most \(UInt32.max))") }
        var frames: [UInt64] = []
        frames.reserveCapacity(count - 2)
        for k in 2..<count { frames.append(try number(k, "stack IP")) }
        return (UInt32(id), frames)
    }

    // MARK: Events

    /// Reads up to `max` more events into the batch; false once the trace is done.
    /// The events are decoded straight into the batch's storage.
    func read(into batch: inout EventBatch, max requested: Int) throws(TraceError) -> Bool {
        let max = Swift.max(requested, 1)
        if recordsLines { lines.removeAll(keepingCapacity: true) }
        return try batch.refill(max: max) { out, max, count, data throws(TraceError) in try fill(out, max: max, count: &count, data: &data) }
    }

    /// Decodes up to `max` events into `out`; `n` counts those written, also when it
    /// throws. Lines in the usual shape go the fast way (TextFastPath.swift); any other
    /// line, and any line the fast way does not take, the general way below.
    private func fill(_ out: UnsafeMutablePointer<Event>, max: Int, count n: inout Int, data: inout [UInt8]) throws(TraceError) -> Bool {
        if let e = pending {
            pending = nil
            out[0] = withData(e, &data)
            n = 1
            if recordsLines { lines.append(pendingLine) }
        }
        while n < max {
            if finished { return n > 0 }
            if fastPathEnabled {
                n = fastEvents(out, n, max, &data)
                if n == max { break }
            }
            guard let l = try input.nextLine(maxLength: TraceValidator.maxLineLength) else {
                finished = true
                if let problem = validator.finish() { throw TraceError(file: file, location: "end", problem) }
                return n > 0
            }
            lineNumber += 1
            guard try tokenize(l) else { continue }
            var e = try eventRecord(keyword())
            e.seq = seq
            if e.kind != .stackDefinition { seq += 1 }
            out[n] = withData(e, &data)
            n += 1
            if recordsLines { lines.append(lineNumber) }
        }
        return true
    }

    /// The event with its data (read by the general path into `pendingData`) moved
    /// into the batch's pool.
    @inline(__always)
    private func withData(_ e: Event, _ data: inout [UInt8]) -> Event {
        guard e.hasData else { return e }
        var e = e
        e.dataOffset = UInt32(data.count)
        data.append(contentsOf: pendingData)
        return e
    }

    /// Parses the current line as an event record and validates it.
    @inline(__always)
    private func eventRecord(_ kw: Keyword) throws(TraceError) -> Event {
        var e: Event
        switch kw {
        case .store, .ntstore:
            let kind: EventKind = kw == .store ? .store : .ntstore
            if count < 3 { try minFields(3, kind) }
            e = Event(kind: kind, address: try number(1, "ADDR"), size: try number(2, "SIZE"))
            if count > 3 { try options(from: 3, into: &e) }
        case .clwb, .clflushopt, .clflush:
            let kind: EventKind = kw == .clwb ? .clwb : kw == .clflush ? .clflush : .clflushopt
            if count < 2 { try minFields(2, kind) }
            e = Event(kind: kind, address: try number(1, "ADDR"))
            if count > 2 { try options(from: 2, into: &e) }
        case .sfence, .mfence, .fence, .wpqflush:
            e = Event(kind: kw == .sfence ? .sfence : kw == .mfence ? .mfence : kw == .fence ? .fence : .wpqflush)
            if count > 1 { try options(from: 1, into: &e) }
        case .op:
            e = try opRecord()
        case .durable:
            try minFields(3, .durable)
            e = Event(kind: .durable, address: try number(1, "ADDR"), size: try number(2, "LEN"))
            try options(from: 3, into: &e)
        case .mark:
            try minFields(2, .mark)
            e = Event(kind: .mark)
            e.name = intern(try freeText(token(1), .markName))
            try options(from: 2, into: &e)
        case .pmem:
            try minFields(3, .pmem)
            e = Event(kind: .pmem, address: try number(1, "pmem BASE"), size: try number(2, "pmem LEN"))
            try options(from: 3, into: &e)
        case .pmemRelease:
            try minFields(3, .pmemRelease)
            e = Event(kind: .pmemRelease, address: try number(1, "pmem-release BASE"), size: try number(2, "pmem-release LEN"))
            try options(from: 3, into: &e)
        case .stack:
            let (id, frames) = try stackRecord()
            if let problem = validator.defineStack(id, frames) { throw fail(problem) }
            return Event(kind: .stackDefinition, address: UInt64(id))
        case .lineSize, .domain, .module, .initial, .meta, .magic:
            if kw == .magic { _ = try headerRecord(kw) }
            throw fail("header record '\(q(0))' after the first event (move it above the events)")
        case .unknown:
            throw fail("unknown record '\(q(0))' (expected \(Self.expectedRecords))")
        }
        if let problem = validator.event(e, at: .line(lineNumber)) { throw fail(problem) }
        return e
    }

    private static func usage(_ kind: EventKind) -> String {
        switch kind {
        case .store, .ntstore: "\(kind.keyword) ADDR SIZE [data=HEX] [stack=ID] [thread=N]"
        case .clwb, .clflushopt, .clflush: "\(kind.keyword) ADDR [stack=ID] [thread=N]"
        case .durable: "durable ADDR LEN [stack=ID] [thread=N]"
        case .mark: "mark NAME [stack=ID] [thread=N]"
        case .pmem: "pmem BASE LEN [name=S] [volatile] [stack=ID] [thread=N]"
        case .pmemRelease: "pmem-release BASE LEN [stack=ID] [thread=N]"
        case .opBegin, .opEnd: "op ID begin dst=ADDR len=N [src=ADDR] [name=S] [contract=flushcache|persist|none] [stack=ID] [thread=N]' or 'op ID end [stack=ID] [thread=N]"
        default: "\(kind.keyword) [stack=ID] [thread=N]"
        }
    }

    private func minFields(_ n: Int, _ kind: EventKind) throws(TraceError) {
        if count < n { throw fail("missing fields in '\(q(0))' record (expected '\(Self.usage(kind))')") }
    }

    /// The key=value fields after the positional ones: stack= and thread= everywhere,
    /// data= on stores, name= and volatile on pmem.
    private func options(from first: Int, into e: inout Event) throws(TraceError) {
        var sawStack = false, sawThread = false, sawName = false
        for k in first..<max(first, count) {
            if e.kind == .pmem && tokenIs(k, "volatile") {
                if e.isVolatile { throw fail("'volatile' given twice") }
                e.flags |= Event.Flags.isVolatile
                continue
            }
            let (key, value) = try keyValue(k, Self.usage(e.kind))
            if equals(key, "stack") {
                if sawStack { throw fail("key 'stack' given twice") }
                sawStack = true
                e.stack = try stackID(value)
            } else if equals(key, "thread") {
                if sawThread { throw fail("key 'thread' given twice") }
                sawThread = true
                e.thread = try threadID(value)
            } else if equals(key, "data") && e.kind.isStore {
                if e.hasData { throw fail("key 'data' given twice") }
                if UInt64(value.count) != e.size &* 2 {
                    throw fail("data= has \(value.count / 2)\(value.count % 2 == 1 ? ".5" : "") bytes for a store of \(e.size) (expected exactly \(e.size) bytes, two hex digits each)")
                }
                pendingData.removeAll(keepingCapacity: true)
                try parseHex(value, into: &pendingData)
                e.flags |= Event.Flags.hasData
            } else if equals(key, "name") && e.kind == .pmem {
                if sawName { throw fail("key 'name' given twice") }
                sawName = true
                e.name = intern(try freeText(value, .name))
            } else {
                let keys = e.kind.isStore ? "data=, stack=, thread=" : e.kind == .pmem ? "name=, volatile, stack=, thread=" : "stack=, thread="
                throw fail("unknown key '\(q(key))' in '\(q(0))' record (expected \(keys))")
            }
        }
    }

    @inline(__always)
    private func stackID(_ value: UnsafeBufferPointer<UInt8>) throws(TraceError) -> UInt32 {
        let id = try number(value, "stack=")
        guard id > 0 && id <= UInt64(UInt32.max) else {
            throw fail("stack=\(id) is not a valid stack ID (expected 1 to \(UInt32.max))")
        }
        return UInt32(id)
    }

    private func threadID(_ value: UnsafeBufferPointer<UInt8>) throws(TraceError) -> UInt32 {
        let n = try number(value, "thread=")
        guard n <= UInt64(UInt32.max) else { throw fail("thread=\(n) is too large (expected 0 to \(UInt32.max))") }
        return UInt32(n)
    }

    private func parseHex(_ t: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) throws(TraceError) {
        out.reserveCapacity(out.count + t.count / 2)
        var i = 0
        while i + 1 < t.count {
            guard let hi = hexDigit(t[i]), let lo = hexDigit(t[i + 1]) else {
                throw fail("bad hex in data= near '\(q(UnsafeBufferPointer(rebasing: t[i..<(i + 2)])))' (expected two hex digits per byte)")
            }
            out.append(hi << 4 | lo)
            i += 2
        }
    }

    private func opRecord() throws(TraceError) -> Event {
        try minFields(3, .opBegin)
        let id = try number(1, "op ID")
        if tokenIs(2, "end") {
            var e = Event(kind: .opEnd)
            e.op = id
            try options(from: 3, into: &e)
            return e
        }
        guard tokenIs(2, "begin") else {
            throw fail("expected 'begin' or 'end' after 'op \(id)', found '\(q(2))'")
        }
        var e = Event(kind: .opBegin)
        e.op = id
        var dst: UInt64?, len: UInt64?
        var seen: [String] = []
        for k in 3..<count {
            let (keyBytes, value) = try keyValue(k, Self.usage(.opBegin))
            let key = String(decoding: keyBytes, as: UTF8.self)
            if seen.contains(key) { throw fail("key '\(q(keyBytes))' given twice") }
            seen.append(key)
            switch key {
            case "dst": dst = try number(value, "dst=")
            case "len": len = try number(value, "len=")
            case "src":
                e.source = try number(value, "src=")
                e.flags |= Event.Flags.hasSource
            case "name":
                e.name = intern(try freeText(value, .name))
                rememberRawName(value, e.name)
            case "contract":
                guard let c = Contract(name: String(decoding: value, as: UTF8.self)) else {
                    throw fail("unknown contract '\(q(value))' (expected flushcache, persist or none)")
                }
                e.contract = c
                e.flags |= Event.Flags.explicitContract
            case "stack": e.stack = try stackID(value)
            case "thread": e.thread = try threadID(value)
            default:
                throw fail("unknown key '\(q(keyBytes))' in op record (expected dst=, len=, src=, name=, contract=, stack=, thread=)")
            }
        }
        guard let dst else { throw fail("op \(id) begin has no dst= (expected '\(Self.usage(.opBegin))')") }
        guard let len else { throw fail("op \(id) begin has no len= (expected '\(Self.usage(.opBegin))')") }
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
@inline(__always)
func parseNumber(_ s: UnsafeBufferPointer<UInt8>) -> UInt64? {
    let n = s.count
    if n == 0 { return nil }
    let p = s.baseAddress!
    var v: UInt64 = 0
    if n > 2 && p[0] == 0x30 && (p[1] == 0x78 || p[1] == 0x58) {
        var i = 2
        // Leading zeros are fine; more than 16 significant digits is not.
        while i < n - 1 && p[i] == 0x30 { i += 1 }
        if n - i > 16 { return nil }
        while i < n {
            guard let d = hexDigit(p[i]) else { return nil }
            v = v << 4 | UInt64(d)
            i += 1
        }
        return v
    }
    if n < 20 {
        // At most 19 digits cannot overflow.
        for i in 0..<n {
            let d = p[i] &- 0x30
            guard d < 10 else { return nil }
            v = v &* 10 &+ UInt64(d)
        }
        return v
    }
    for i in 0..<n {
        let d = p[i] &- 0x30
        guard d < 10 else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(d))
        if o1 || o2 { return nil }
        v = a
    }
    return v
}
