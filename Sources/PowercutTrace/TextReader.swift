import Glibc

/// Reads the text form (Docs/trace-format.md) straight out of the input buffer: no
/// per-line strings, one pass, errors with file:line and the offending text (at most
/// 80 bytes of it, escaped).
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
    /// Hex digit values; 0xFF for anything else.
    private let hexValue: UnsafeMutablePointer<UInt8>

    var stacks: [UInt32: [UInt64]] { validator.stacks }

    init(input: ByteInput) throws(TraceError) {
        self.input = input
        starts = .allocate(capacity: tokenCapacity)
        ends = .allocate(capacity: tokenCapacity)
        hexValue = .allocate(capacity: 256)
        for c in 0..<256 { hexValue[c] = hexDigit(UInt8(c)) ?? 0xFF }
        try readHeader()
    }

    deinit {
        out.deallocate()
        hexValue.deallocate()
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
    func read(into batch: inout EventBatch, max: Int) throws(TraceError) -> Bool {
        if outCapacity < max {
            out.deallocate()
            out = .allocate(capacity: max)
            outCapacity = max
        }
        var n = 0
        defer { batch.events.append(contentsOf: UnsafeBufferPointer(start: out, count: n)) }
        if let e = pending {
            pending = nil
            out[0] = withData(e, &batch)
            n = 1
        }
        while n < max {
            if finished { return n > 0 }
            guard let l = try input.nextLine(maxLength: TraceValidator.maxLineLength) else {
                finished = true
                if let problem = validator.finish() { throw TraceError(file: file, location: "end", problem) }
                return n > 0
            }
            lineNumber += 1
            if l.count <= TraceValidator.maxLineLength, let base = l.baseAddress, var e = fastEvent(base, l.count) {
                e.seq = seq
                seq += 1
                out[n] = e.hasData ? withData(e, &batch) : e
                n += 1
                continue
            }
            guard try tokenize(l) else { continue }
            var e = try eventRecord(keyword())
            e.seq = seq
            if e.kind != .stackDefinition { seq += 1 }
            out[n] = withData(e, &batch)
            n += 1
        }
        return true
    }

    /// Events are assembled here and copied into the batch in one go.
    private var out = UnsafeMutablePointer<Event>.allocate(capacity: 0)
    private var outCapacity = 0

    /// The event with its data moved into the batch.
    @inline(__always)
    private func withData(_ e: Event, _ batch: inout EventBatch) -> Event {
        guard e.hasData else { return e }
        var e = e
        e.dataOffset = UInt32(batch.data.count)
        batch.data.append(contentsOf: pendingData)
        return e
    }

    // MARK: The fast path

    /// The common events in their usual shape — a keyword at the start of the line,
    /// numbers, `stack=`, `thread=`, `data=` — parsed in one pass without tokens.
    /// Anything else (or anything wrong) gives nil and goes the general way, which
    /// parses, checks and words every error; so no check lives only here.
    @inline(__always)
    private func fastEvent(_ p: UnsafePointer<UInt8>, _ n: Int) -> Event? {
        // The keyword, packed little-endian (all the fast ones fit 8 bytes but one).
        var i = 0
        var word: UInt64 = 0
        while i < n {
            let c = p[i]
            if c == 0x20 || c == 0x09 { break }
            if i == 10 { return nil }
            if i < 8 { word |= UInt64(c) << (8 * UInt64(i)) }
            i += 1
        }
        let kind: EventKind
        switch (i, word) {
        case (5, Self.kwStore): kind = .store
        case (7, Self.kwNtstore): kind = .ntstore
        case (4, Self.kwClwb): kind = .clwb
        case (7, Self.kwClflush): kind = .clflush
        case (10, Self.kwClflushopt8):
            guard p[8] == 0x70 && p[9] == 0x74 else { return nil }  // "pt"
            kind = .clflushopt
        case (6, Self.kwSfence): kind = .sfence
        case (6, Self.kwMfence): kind = .mfence
        case (5, Self.kwFence): kind = .fence
        case (8, Self.kwWpqflush): kind = .wpqflush
        case (2, Self.kwOp): return fastOp(p, n, i)
        default: return nil
        }
        var e = Event(kind: kind)
        if kind.rawValue <= EventKind.clflush.rawValue {
            guard let a = fastNumber(p, n, &i) else { return nil }
            e.address = a
            if kind.isStore {
                guard let size = fastNumber(p, n, &i) else { return nil }
                e.size = size
            }
        }
        // Options.
        while true {
            while i < n && (p[i] == 0x20 || p[i] == 0x09) { i += 1 }
            if i == n || p[i] == 0x23 { break }
            let c = p[i]
            if c == 0x73, i + 6 < n, p[i + 1] == 0x74, p[i + 2] == 0x61, p[i + 3] == 0x63, p[i + 4] == 0x6B, p[i + 5] == 0x3D {
                // stack=
                if e.stack != 0 { return nil }
                i += 6
                guard let s = fastNumber(p, n, &i), s > 0 && s <= UInt64(UInt32.max) else { return nil }
                e.stack = UInt32(s)
            } else if c == 0x74, i + 7 < n, p[i + 1] == 0x68, p[i + 2] == 0x72, p[i + 3] == 0x65, p[i + 4] == 0x61,
                      p[i + 5] == 0x64, p[i + 6] == 0x3D {
                // thread=
                if e.thread != 0 { return nil }
                i += 7
                guard let t = fastNumber(p, n, &i), t > 0 && t <= UInt64(UInt32.max) else { return nil }
                e.thread = UInt32(t)
            } else if c == 0x64, kind.isStore, !e.hasData, i + 5 < n, p[i + 1] == 0x61, p[i + 2] == 0x74, p[i + 3] == 0x61, p[i + 4] == 0x3D {
                // data=
                i += 5
                let start = i
                while i < n && p[i] != 0x20 && p[i] != 0x09 && p[i] != 0x23 { i += 1 }
                guard e.size <= TraceValidator.maxStoreSize, i - start == Int(e.size) * 2 else { return nil }
                pendingData.removeAll(keepingCapacity: true)
                var k = start
                while k < i {
                    let hi = hexValue[Int(p[k])], lo = hexValue[Int(p[k + 1])]
                    guard hi | lo < 16 else { return nil }
                    pendingData.append(hi << 4 | lo)
                    k += 2
                }
                e.flags |= Event.Flags.hasData
            } else {
                return nil
            }
        }
        if validator.event(e, at: .line(lineNumber)) != nil { return nil }
        return e
    }

    /// `op ID end` and `op ID begin dst= len= [name=]` with the last name seen, plus
    /// stack= and thread=.
    @inline(__always)
    private func fastOp(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> Event? {
        var i = start
        guard let id = fastNumber(p, n, &i) else { return nil }
        while i < n && (p[i] == 0x20 || p[i] == 0x09) { i += 1 }
        var e: Event
        if i + 3 <= n && p[i] == 0x65 && p[i + 1] == 0x6E && p[i + 2] == 0x64 {  // end
            e = Event(kind: .opEnd)
            i += 3
        } else if i + 5 <= n && p[i] == 0x62 && p[i + 1] == 0x65 && p[i + 2] == 0x67 && p[i + 3] == 0x69 && p[i + 4] == 0x6E {  // begin
            e = Event(kind: .opBegin)
            i += 5
        } else {
            return nil
        }
        guard i == n || p[i] == 0x20 || p[i] == 0x09 else { return nil }
        e.op = id
        var sawDst = false, sawLen = false
        while true {
            while i < n && (p[i] == 0x20 || p[i] == 0x09) { i += 1 }
            if i == n || p[i] == 0x23 { break }
            let c = p[i]
            if e.kind == .opBegin && !sawDst && c == 0x64 && i + 4 < n && p[i + 1] == 0x73 && p[i + 2] == 0x74 && p[i + 3] == 0x3D {
                i += 4
                guard let v = fastNumber(p, n, &i) else { return nil }
                e.address = v
                sawDst = true
            } else if e.kind == .opBegin && !sawLen && c == 0x6C && i + 4 < n && p[i + 1] == 0x65 && p[i + 2] == 0x6E && p[i + 3] == 0x3D {
                i += 4
                guard let v = fastNumber(p, n, &i) else { return nil }
                e.size = v
                sawLen = true
            } else if e.kind == .opBegin && e.name == 0 && c == 0x6E && i + 5 < n && p[i + 1] == 0x61 && p[i + 2] == 0x6D && p[i + 3] == 0x65 && p[i + 4] == 0x3D {
                i += 5
                let s = i
                while i < n && p[i] != 0x20 && p[i] != 0x09 && p[i] != 0x23 { i += 1 }
                guard lastNameIndex != 0, i - s == lastName.count,
                      lastName.withUnsafeBufferPointer({ memcmp($0.baseAddress!, p + s, i - s) == 0 }) else { return nil }
                e.name = lastNameIndex
            } else if c == 0x73, e.stack == 0, i + 6 < n, p[i + 1] == 0x74, p[i + 2] == 0x61, p[i + 3] == 0x63, p[i + 4] == 0x6B, p[i + 5] == 0x3D {
                i += 6
                guard let v = fastNumber(p, n, &i), v > 0 && v <= UInt64(UInt32.max) else { return nil }
                e.stack = UInt32(v)
            } else if c == 0x74, e.thread == 0, i + 7 < n, p[i + 1] == 0x68, p[i + 2] == 0x72, p[i + 3] == 0x65, p[i + 4] == 0x61,
                      p[i + 5] == 0x64, p[i + 6] == 0x3D {
                i += 7
                guard let v = fastNumber(p, n, &i), v > 0 && v <= UInt64(UInt32.max) else { return nil }
                e.thread = UInt32(v)
            } else {
                return nil
            }
        }
        if e.kind == .opBegin && !(sawDst && sawLen) { return nil }
        if validator.event(e, at: .line(lineNumber)) != nil { return nil }
        return e
    }

    /// The raw text of the op name interned last and its index (0: none yet).
    private var lastName: [UInt8] = []
    private var lastNameIndex: UInt32 = 0

    /// Skips blanks, then reads a number that ends at a blank, `#` or the line's end.
    @inline(__always)
    private func fastNumber(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> UInt64? {
        var k = i
        while k < n && (p[k] == 0x20 || p[k] == 0x09) { k += 1 }
        let start = k
        var v: UInt64 = 0
        if k + 2 < n && p[k] == 0x30 && (p[k + 1] == 0x78 || p[k + 1] == 0x58) {
            k += 2
            let digits = k
            while k < n {
                let d = hexValue[Int(p[k])]
                if d >= 16 { break }
                v = v << 4 | UInt64(d)
                k += 1
            }
            if k == digits || k - digits > 16 { return nil }
        } else {
            while k < n {
                let d = p[k] &- 0x30
                if d >= 10 { break }
                v = v &* 10 &+ UInt64(d)
                k += 1
            }
            if k == start || k - start > 19 { return nil }
        }
        // The number must end the field.
        if k < n && p[k] != 0x20 && p[k] != 0x09 && p[k] != 0x23 { return nil }
        i = k
        return v
    }

    // The keywords packed little-endian, first 8 bytes ("store" is 0x65726f7473).
    private static let kwStore: UInt64 = 0x65726f7473, kwNtstore: UInt64 = 0x65726f7473746e, kwClwb: UInt64 = 0x62776c63
    private static let kwClflush: UInt64 = 0x6873756c666c63, kwClflushopt8: UInt64 = 0x6f6873756c666c63, kwSfence: UInt64 = 0x65636e656673
    private static let kwOp: UInt64 = 0x706f
    private static let kwMfence: UInt64 = 0x65636e65666d, kwFence: UInt64 = 0x65636e6566, kwWpqflush: UInt64 = 0x6873756c66717077


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
                lastName = Array(value)
                lastNameIndex = e.name
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
