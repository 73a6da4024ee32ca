import Glibc

/// The binary trace form, version 1: the text form's information, compact and fast to
/// stream. Docs/binary-format.md describes it for other implementations.
///
///     file    := MAGIC version:varint record* END
///     MAGIC   := 89 50 43 54 0D 0A 1A 0A              ("\x89PCT\r\n\x1a\n")
///     END     := 07 eventCount:varint                 (absent: the writer died)
///
/// Header records (before the first event; a stack record may also appear between
/// events), tag then fields:
///
///     01 line-size  n:varint
///     02 domain     d:u8 (0 adr, 1 eadr, 2 wpq)
///     03 pmem       base:varint len:varint flags:u8 (1 volatile, 2 named) [name:str]
///     04 module     path:str base:varint size:varint flags:u8 (1 build-id) [id:str]
///     05 stack      id:varint count:varint frame0:varint (zz delta to previous frame)*
///     06 meta       key:str value:str
///     08 init       addr:varint len:varint, then len raw bytes (header only)
///     09 thread     n:varint — the events that follow belong to thread n (header or
///                   between events; starts at 0; written only when it changes)
///
/// Events: one tag byte `0x20 | kind | 0x40 (has stack) | 0x80 (has data)`, kind as
/// `EventKind.rawValue`, then its fields, then `stack:varint` if flagged, then the data
/// bytes if flagged. Addresses are zigzag varint deltas from a running address `prev`
/// (0 at the start), so a sequential copy writes delta 0 per store:
///
///     store/ntstore  zz(addr-prev) size:varint          prev = addr+size
///     clwb/clflushopt/clflush  zz(addr-prev)            prev = addr
///     sfence/mfence/fence/wpqflush  (nothing)
///     op begin  id:varint zz(dst-prev) len:varint flags:u8 [zz(src-dst)] [name:str]
///               flags: 1 src, 2 name, 4 contract given, (contract << 3)   prev = dst
///     op end    id:varint
///     durable   zz(addr-prev) len:varint                prev = addr
///     mark      name:str
///     pmem      base:varint len:varint flags:u8 (1 volatile, 2 named) [name:str]
///     pmem-release  base:varint len:varint
///
/// `varint` is unsigned LEB128 (at most 64 bits), `zz` zigzag (0,-1,1,-2… as 0,1,2,3…),
/// `str` a varint byte count then that many raw bytes (any value; at most 1 MiB).
public enum BinaryFormat {
    public static let magic: [UInt8] = [0x89, 0x50, 0x43, 0x54, 0x0D, 0x0A, 0x1A, 0x0A]

    enum Tag {
        static let lineSize: UInt8 = 0x01
        static let domain: UInt8 = 0x02
        static let pmem: UInt8 = 0x03
        static let module: UInt8 = 0x04
        static let stack: UInt8 = 0x05
        static let meta: UInt8 = 0x06
        static let end: UInt8 = 0x07
        static let initial: UInt8 = 0x08
        static let thread: UInt8 = 0x09
        static let event: UInt8 = 0x20
        static let hasStack: UInt8 = 0x40
        static let hasData: UInt8 = 0x80
    }

    @inline(__always) static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inline(__always) static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }
}

/// Streams a trace out in the binary form.
public final class BinaryTraceWriter: TraceSink {
    private let out: OutputFile
    private var prev: UInt64 = 0
    private var thread: UInt32 = 0
    private var check = WriterChecks()

    public init(_ out: OutputFile) {
        self.out = out
    }

    @inline(__always)
    private func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    @inline(__always)
    private func delta(_ to: UInt64, from: UInt64) {
        varint(BinaryFormat.zigzag(Int64(bitPattern: to &- from)))
    }

    /// A display-form string as the raw bytes it stands for.
    private func string(_ s: String) {
        let bytes = TraceText.bytes(of: s)
        varint(UInt64(bytes.count))
        for b in bytes { out.append(b) }
    }

    public func begin(_ header: TraceHeader) throws(TraceError) {
        try check.header(header, file: out.path)
        for b in BinaryFormat.magic { out.append(b) }
        varint(TraceVersion.binary)
        for r in header.records {
            switch r {
            case .lineSize(let n):
                out.append(BinaryFormat.Tag.lineSize)
                varint(n)
            case .domain(let d):
                out.append(BinaryFormat.Tag.domain)
                out.append(d.rawValue)
            case .pmem(let p):
                out.append(BinaryFormat.Tag.pmem)
                varint(p.base)
                varint(p.length)
                out.append((p.isVolatile ? 1 : 0) | (p.name != nil ? 2 : 0))
                if let name = p.name { string(name) }
            case .module(let m):
                out.append(BinaryFormat.Tag.module)
                string(m.path)
                varint(m.base)
                varint(m.size)
                out.append(m.buildID != nil ? 1 : 0)
                if let id = m.buildID { string(id) }
            case .stack(let id, let frames):
                stack(id, frames)
            case .meta(let k, let v):
                out.append(BinaryFormat.Tag.meta)
                string(k)
                string(v)
            case .initial(let address, let data):
                out.append(BinaryFormat.Tag.initial)
                varint(address)
                varint(UInt64(data.count))
                for b in data { out.append(b) }
            }
            try out.flushIfFull()
        }
    }

    private func stack(_ id: UInt32, _ frames: [UInt64]) {
        out.append(BinaryFormat.Tag.stack)
        varint(UInt64(id))
        varint(UInt64(frames.count))
        var last: UInt64 = 0
        for f in frames {
            delta(f, from: last)
            last = f
        }
    }

    public func write(_ batch: EventBatch, names: [String], stacks: [UInt32: [UInt64]]) throws(TraceError) {
        try check.names(names, file: out.path)
        for e in batch.events {
            if e.kind == .stackDefinition {
                let id = UInt32(truncatingIfNeeded: e.address)
                stack(id, stacks[id] ?? [])
                continue
            }
            try check.event(e, names: names, file: out.path)
            if e.thread != thread {
                out.append(BinaryFormat.Tag.thread)
                varint(UInt64(e.thread))
                thread = e.thread
            }
            var tag = BinaryFormat.Tag.event | e.kind.rawValue
            if e.stack != 0 { tag |= BinaryFormat.Tag.hasStack }
            if e.hasData { tag |= BinaryFormat.Tag.hasData }
            out.append(tag)
            switch e.kind {
            case .store, .ntstore:
                delta(e.address, from: prev)
                varint(e.size)
                prev = e.address &+ e.size
            case .clwb, .clflushopt, .clflush:
                delta(e.address, from: prev)
                prev = e.address
            case .sfence, .mfence, .fence, .wpqflush, .stackDefinition:
                break
            case .mark:
                string(names[Int(e.name) - 1])
            case .pmem:
                varint(e.address)
                varint(e.size)
                out.append((e.isVolatile ? 1 : 0) | (e.name != 0 ? 2 : 0))
                if e.name != 0 { string(names[Int(e.name) - 1]) }
            case .pmemRelease:
                varint(e.address)
                varint(e.size)
            case .opBegin:
                varint(e.op)
                delta(e.address, from: prev)
                varint(e.size)
                var flags: UInt8 = e.contract.rawValue << 3
                if e.hasSource { flags |= 1 }
                if e.name != 0 { flags |= 2 }
                if e.hasExplicitContract { flags |= 4 }
                out.append(flags)
                if e.hasSource { delta(e.source, from: e.address) }
                if e.name != 0 { string(names[Int(e.name) - 1]) }
                prev = e.address
            case .opEnd:
                varint(e.op)
            case .durable:
                delta(e.address, from: prev)
                varint(e.size)
                prev = e.address
            }
            if e.stack != 0 { varint(UInt64(e.stack)) }
            if e.hasData {
                let start = Int(e.dataOffset)
                for i in start..<start + Int(e.size) { out.append(batch.data[i]) }
            }
            try out.flushIfFull()
        }
    }

    public func end(eventCount: UInt64) throws(TraceError) {
        out.append(BinaryFormat.Tag.end)
        varint(eventCount)
        try out.commit()
    }
}

/// Reads the binary form.
final class BinaryTraceReader {
    private let input: ByteInput
    private var validator = TraceValidator()
    private var seq: UInt64 = 0
    private var prev: UInt64 = 0
    private var thread: UInt32 = 0
    private(set) var header = TraceHeader()
    private(set) var names: [String] = []
    private var nameIndex: [String: UInt32] = [:]
    private var finished = false
    /// The tag of the first event, read while looking for the end of the header.
    private var pendingTag: UInt8?

    var stacks: [UInt32: [UInt64]] { validator.stacks }

    deinit { lastName.deallocate() }

    init(input: ByteInput) throws(TraceError) {
        self.input = input
        guard try input.ensure(BinaryFormat.magic.count),
              (0..<BinaryFormat.magic.count).allSatisfy({ input.buffer[input.position + $0] == BinaryFormat.magic[$0] })
        else { throw TraceError(file: input.name, "not a powercut binary trace (bad magic)") }
        input.position += BinaryFormat.magic.count
        let version = try varint()
        if version != TraceVersion.binary {
            throw fail("unsupported binary trace version \(version) (this build reads binary version \(TraceVersion.binary))")
        }
        try readHeader()
    }

    private func fail(_ message: String) -> TraceError {
        TraceError(file: input.name, location: "byte \(input.fileOffset)", message)
    }

    private func fail(at offset: UInt64, _ message: String) -> TraceError {
        TraceError(file: input.name, location: "byte \(offset)", message)
    }

    private func truncated() -> TraceError {
        fail("truncated binary trace: it ends inside a record (the writer may have died; re-record it)")
    }

    @inline(__always)
    private func byte() throws(TraceError) -> UInt8 {
        if input.position >= input.end {
            guard try input.ensure(1) else { throw truncated() }
        }
        let b = input.buffer[input.position]
        input.position += 1
        return b
    }

    @inline(__always)
    private func varint() throws(TraceError) -> UInt64 {
        // Fast path: one byte, or the whole varint in the buffer.
        let p = input.buffer + input.position
        if input.end - input.position >= 10 {
            let b0 = p[0]
            if b0 < 0x80 {
                input.position += 1
                return UInt64(b0)
            }
            var v = UInt64(b0 & 0x7F)
            var shift: UInt64 = 7
            var i = 1
            while true {
                let b = p[i]
                i += 1
                if i == 10 && b > 1 { throw tooLong() }
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { break }
                shift += 7
            }
            input.position += i
            return v
        }
        return try slowVarint()
    }

    @inline(never)
    private func slowVarint() throws(TraceError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            if shift == 63 && b > 1 { throw tooLong() }
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    @inline(never)
    private func tooLong() -> TraceError {
        fail("bad varint (more than 64 bits; a varint is at most 10 bytes, the tenth 0 or 1)")
    }

    @inline(__always)
    private func address() throws(TraceError) -> UInt64 {
        prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(try varint()))
    }

    /// A string of the given kind, checked, in display form.
    private func string(_ field: TraceValidator.StringField) throws(TraceError) -> String {
        let at = input.fileOffset
        let n = try varint()
        guard n <= UInt64(TraceText.maxLength) else {
            throw fail(at: at, "\(field.what) of \(n) bytes is too long (at most \(TraceText.maxLength); corrupt trace?)")
        }
        guard try input.ensure(Int(n)) else { throw truncated() }
        let bytes = UnsafeBufferPointer(start: input.buffer + input.position, count: Int(n))
        if let problem = TraceValidator.stringProblem(bytes, field) { throw fail(at: at, problem) }
        input.position += Int(n)
        return TraceText.display(bytes)
    }

    private func stackRecord() throws(TraceError) -> (UInt32, [UInt64]) {
        let id = try varint()
        guard id <= UInt64(UInt32.max) else { throw fail("stack ID \(id) is too large (at most \(UInt32.max))") }
        let count = try varint()
        guard count <= UInt64(TraceValidator.maxFrames) else {
            throw fail("stack \(id) has \(count) frames (at most \(TraceValidator.maxFrames); corrupt trace?)")
        }
        var frames: [UInt64] = []
        frames.reserveCapacity(Int(count))
        var last: UInt64 = 0
        for _ in 0..<count {
            last = last &+ UInt64(bitPattern: BinaryFormat.unzigzag(try varint()))
            frames.append(last)
        }
        return (UInt32(id), frames)
    }

    private func threadNumber(_ n: UInt64) throws(TraceError) -> UInt32 {
        guard n <= UInt64(UInt32.max) else { throw fail("thread \(n) is too large (at most \(UInt32.max))") }
        return UInt32(n)
    }

    private func readHeader() throws(TraceError) {
        while true {
            let at = input.fileOffset
            let tag = try byte()
            let record: HeaderRecord
            switch tag {
            case BinaryFormat.Tag.lineSize:
                record = .lineSize(try varint())
            case BinaryFormat.Tag.domain:
                let d = try byte()
                guard let domain = Domain(rawValue: d) else { throw fail("unknown domain code \(d) (expected 0 adr, 1 eadr, 2 wpq)") }
                record = .domain(domain)
            case BinaryFormat.Tag.pmem:
                var r = PmemRange(base: try varint(), length: try varint())
                let flags = try byte()
                guard flags & ~3 == 0 else { throw fail("unknown pmem flag bits 0x\(hex(UInt64(flags & ~3))) (expected 1 volatile, 2 named)") }
                r.isVolatile = flags & 1 != 0
                if flags & 2 != 0 { r.name = try string(.name) }
                record = .pmem(r)
            case BinaryFormat.Tag.module:
                var m = Module(path: try string(.modulePath), base: try varint(), size: try varint())
                let flags = try byte()
                guard flags & ~1 == 0 else { throw fail("unknown module flag bits 0x\(hex(UInt64(flags & ~1))) (expected 1 build-id)") }
                if flags & 1 != 0 { m.buildID = try string(.buildID) }
                record = .module(m)
            case BinaryFormat.Tag.stack:
                let (id, frames) = try stackRecord()
                record = .stack(id: id, frames: frames)
            case BinaryFormat.Tag.meta:
                record = .meta(key: try string(.metaKey), value: try string(.metaValue))
            case BinaryFormat.Tag.initial:
                let address = try varint()
                let n = try varint()
                guard n > 0 && n <= TraceValidator.maxInitLength else {
                    throw fail("init at 0x\(hex(address)) holds \(n) bytes (expected 1 to \(TraceValidator.maxInitLength))")
                }
                guard try input.ensure(Int(n)) else { throw truncated() }
                record = .initial(address: address, data: Array(UnsafeBufferPointer(start: input.buffer + input.position, count: Int(n))))
                input.position += Int(n)
            case BinaryFormat.Tag.thread:
                thread = try threadNumber(try varint())
                continue
            case BinaryFormat.Tag.end:
                try endHeader()
                try readEnd()
                if let problem = validator.finish() { throw fail(problem) }
                return
            default:
                guard tag & BinaryFormat.Tag.event != 0 else { throw fail(at: at, "unknown record tag 0x\(hex(UInt64(tag)))") }
                try endHeader()
                pendingTag = tag
                return
            }
            if let problem = validator.header(record, at: .byte(at)) { throw fail(at: at, problem) }
            header.records.append(record)
        }
    }

    private func endHeader() throws(TraceError) {
        if let (at, problem) = validator.endHeader() {
            throw TraceError(file: input.name, location: at.errorLocation, problem)
        }
    }

    private func readEnd() throws(TraceError) {
        let count = try varint()
        if count != seq {
            throw fail("trailer says \(count) events but \(seq) were read (corrupt trace)")
        }
        if try input.ensure(1) { throw fail("bytes after the end record (corrupt trace)") }
        finished = true
    }

    /// Replaces the batch's events with up to `max` further ones, decoded straight into
    /// the new array's storage (no staging copy).
    func read(into batch: inout EventBatch, max requested: Int) throws(TraceError) -> Bool {
        let max = Swift.max(requested, 1)
        return try batch.refill(max: max) { out, max, count, data throws(TraceError) in try decode(into: out, max: max, count: &count, data: &data) }
    }

    /// Decodes up to `max` events into `out`; `n` counts those written, also when it
    /// throws. Returns false when the trace ended before any.
    private func decode(into out: UnsafeMutablePointer<Event>, max: Int, count n: inout Int,
                        data: inout [UInt8]) throws(TraceError) -> Bool {
        while n < max {
            if finished { return n > 0 }
            _ = try input.ensure(64)
            if pendingTag == nil {
                n = coalescesStoreRuns ? fastEvents(out, n, max, coalesce: true) : fastEvents(out, n, max, coalesce: false)
                if n == max { break }
            }
            let start = input.fileOffset - (pendingTag != nil ? 1 : 0)
            let tag: UInt8
            if let t = pendingTag {
                tag = t
                pendingTag = nil
            } else {
                guard input.position < input.end else {
                    throw fail("truncated binary trace: no end record after \(seq) events (the writer may have died; re-record it)")
                }
                tag = input.buffer[input.position]
                input.position += 1
            }
            if tag < BinaryFormat.Tag.event {
                switch tag {
                case BinaryFormat.Tag.stack:
                    let (id, frames) = try stackRecord()
                    if let problem = validator.defineStack(id, frames) { throw fail(problem) }
                    out[n] = Event(kind: .stackDefinition, seq: seq, address: UInt64(id))
                    n += 1
                case BinaryFormat.Tag.thread:
                    thread = try threadNumber(try varint())
                case BinaryFormat.Tag.end:
                    try readEnd()
                    if let problem = validator.finish() { throw fail(problem) }
                    return n > 0
                default:
                    throw fail("header record (tag 0x\(hex(UInt64(tag)))) after the first event")
                }
                continue
            }
            guard let kind = EventKind(rawValue: tag & 0x1F), kind != .stackDefinition else {
                throw fail("unknown event code \(tag & 0x1F)")
            }
            var e = Event(kind: kind, seq: seq)
            e.thread = thread
            switch kind {
            case .store, .ntstore:
                e.address = try address()
                e.size = try varint()
                prev = e.address &+ e.size
            case .clwb, .clflushopt, .clflush:
                e.address = try address()
                prev = e.address
            case .sfence, .mfence, .fence, .wpqflush, .stackDefinition:
                break
            case .opBegin:
                e.op = try varint()
                e.address = try address()
                e.size = try varint()
                let flags = try byte()
                guard flags >> 5 == 0 else { throw fail("unknown op flag bits 0x\(hex(UInt64(flags & 0xE0))) (expected 1 src, 2 name, 4 contract, bits 3-4 the contract)") }
                guard let c = Contract(rawValue: flags >> 3) else { throw fail("unknown contract code \(flags >> 3)") }
                if flags & 4 == 0 && c != .flushcache {
                    throw fail("op contract bits \(flags >> 3) without the 'contract written' flag (expected flag 4 with a contract, or no contract bits)")
                }
                e.contract = c
                if flags & 4 != 0 { e.flags |= Event.Flags.explicitContract }
                if flags & 1 != 0 {
                    e.source = e.address &+ UInt64(bitPattern: BinaryFormat.unzigzag(try varint()))
                    e.flags |= Event.Flags.hasSource
                }
                if flags & 2 != 0 { e.name = try opName() }
                prev = e.address
            case .opEnd:
                e.op = try varint()
            case .durable:
                e.address = try address()
                e.size = try varint()
                prev = e.address
            case .mark:
                e.name = intern(try string(.markName))
            case .pmem:
                e.address = try varint()
                e.size = try varint()
                let flags = try byte()
                guard flags & ~3 == 0 else { throw fail("unknown pmem flag bits 0x\(hex(UInt64(flags & ~3))) (expected 1 volatile, 2 named)") }
                if flags & 1 != 0 { e.flags |= Event.Flags.isVolatile }
                if flags & 2 != 0 { e.name = intern(try string(.name)) }
            case .pmemRelease:
                e.address = try varint()
                e.size = try varint()
            }
            if tag & BinaryFormat.Tag.hasStack != 0 {
                let s = try varint()
                guard s > 0 && s <= UInt64(UInt32.max) else { throw fail("bad stack ID \(s)") }
                e.stack = UInt32(s)
            }
            if tag & BinaryFormat.Tag.hasData != 0 {
                guard kind.isStore else { throw fail("data on a \(kind.keyword) event") }
                guard e.size > 0 && e.size <= TraceValidator.maxStoreSize else {
                    throw fail("\(kind.keyword) SIZE \(e.size) is out of range (expected 1 to \(TraceValidator.maxStoreSize))")
                }
                guard try input.ensure(Int(e.size)) else { throw truncated() }
                e.flags |= Event.Flags.hasData
                e.dataOffset = UInt32(data.count)
                data.append(contentsOf: UnsafeBufferPointer(start: input.buffer + input.position, count: Int(e.size)))
                input.position += Int(e.size)
            }
            if let problem = validator.event(e, at: .event(seq)) { throw fail(at: start, "event #\(seq): " + problem) }
            seq += 1
            out[n] = e
            n += 1
        }
        return true
    }

    /// The common events, decoded straight from the buffer while at least 64 bytes
    /// are in it (more than any of these records takes): plain stores without data,
    /// write-backs, fences, ops whose name is the last one seen. Stops at anything else
    /// (or anything wrong) with the record unread, for the general path to decode or
    /// reject; so every check stays in one place.
    ///
    /// The checks a store, write-back or fence needs are made here (a store's SIZE, a
    /// stack seen before); the validator sees the markers and the first event of each
    /// stack, which is all it would act on.
    @inline(__always)
    private func fastEvents(_ out: UnsafeMutablePointer<Event>, _ first: Int, _ max: Int, coalesce: Bool) -> Int {
        var n = first
        let buf = UnsafePointer(input.buffer)
        var pos = input.position
        let end = input.end
        let limit = end - 64
        var prev = self.prev
        var seq = self.seq
        var knownStack = self.knownStack
        let thread = self.thread
        defer {
            input.position = pos
            self.prev = prev
            self.seq = seq
            self.knownStack = knownStack
        }
        var repeated = self.repeated
        defer { self.repeated = repeated }
        while n < max && pos <= limit {
            let word = UnsafeRawPointer(buf + pos).loadUnaligned(as: UInt32.self)
            if word & repeated.mask == repeated.bytes {
                // The same bytes as the last short record: the same kind, delta, size and
                // stack, all checked then; only the address moves on.
                var address: UInt64 = 0
                var next = prev
                if repeated.mode != 0 {
                    address = prev &+ repeated.delta
                    next = address
                    if repeated.mode == 2 {
                        guard address &+ (repeated.size &- 1) >= address else { return n }
                        next = address &+ repeated.size
                    }
                }
                (out + n).initialize(to: Event(kind: repeated.kind, seq: seq, address: address, size: repeated.size,
                                               stack: repeated.stack, thread: thread))
                pos &+= repeated.length
                if coalesce && repeated.mode == 2 && repeated.delta == 0 {
                    // The records after it that repeat it join it.
                    let more = Self.repeats(repeated.bytes, repeated.mask, repeated.length, repeated.size, buf, &pos, limit, after: &next)
                    out[n].runLength = 1 &+ more
                    seq &+= UInt64(more)
                }
                n &+= 1
                seq &+= 1
                prev = next
                continue
            }
            let tag = buf[pos]
            let code = tag & 0x1F
            var p = pos &+ 1
            var address: UInt64 = 0, size: UInt64 = 0
            // The running address after this record, kept only if the record is.
            var next = prev
            if tag & 0xBE == 0x20 {
                // store/ntstore without data; usually a one-byte delta and size.
                let d = buf[p], z = buf[p &+ 1]
                if d | z < 0x80 {
                    p &+= 2
                    address = prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(UInt64(d)))
                    size = UInt64(z)
                } else {
                    guard let dv = Self.varint(buf, &p), let zv = Self.varint(buf, &p) else { return n }
                    address = prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(dv))
                    size = zv
                }
                guard size &- 1 < TraceValidator.maxStoreSize, address &+ (size &- 1) >= address else { return n }
                next = address &+ size
            } else if tag & 0xA0 == 0x20 && code &- 2 < 3 {
                // clwb/clflushopt/clflush
                let d = buf[p]
                if d < 0x80 {
                    p &+= 1
                    address = prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(UInt64(d)))
                } else {
                    guard let dv = Self.varint(buf, &p) else { return n }
                    address = prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(dv))
                }
                next = address
            } else if tag & 0xA0 == 0x20 && code &- 5 < 4 {
                // sfence/mfence/fence/wpqflush: no fields
            } else if tag & 0xA0 == 0x20 && code &- 9 < 2 {
                guard fastOp(tag, buf, &p, end, out + n, prev: &prev, seq: seq, thread: thread, knownStack: &knownStack)
                else { return n }
                n &+= 1
                seq &+= 1
                pos = p
                continue
            } else {
                break
            }
            var stack: UInt32 = 0
            if tag & BinaryFormat.Tag.hasStack != 0 {
                let b = buf[p]
                var s = UInt64(b)
                if b < 0x80 {
                    p &+= 1
                } else {
                    guard let v = Self.varint(buf, &p) else { return n }
                    s = v
                }
                guard s &- 1 < UInt64(UInt32.max) else { return n }
                stack = UInt32(truncatingIfNeeded: s)
                if stack != knownStack {
                    if stack >= 64 || knownLowStacks & (1 << UInt64(stack)) == 0 {
                        // A stack not seen before: the validator checks it is defined.
                        guard newStack(code, seq: seq, address: address, size: size, stack: stack, thread: thread)
                        else { return n }
                        if stack < 64 { knownLowStacks |= 1 << UInt64(stack) }
                    }
                    knownStack = stack
                }
            }
            (out + n).initialize(to: Event(kind: EventKind(unchecked: code), seq: seq, address: address, size: size,
                                           stack: stack, thread: thread))
            let short = p &- pos <= 4
            if short {
                let length = p &- pos
                repeated = RepeatedRecord(
                    bytes: word & (UInt32.max >> UInt32(32 &- 8 &* length)), mask: UInt32.max >> UInt32(32 &- 8 &* length),
                    length: length, kind: EventKind(unchecked: code),
                    mode: code <= 1 ? 2 : code <= 4 ? 1 : 0, delta: address &- prev, size: size, stack: stack)
            }
            pos = p
            if coalesce && short && code <= 1 && address == prev {
                // A store with delta 0 whose record repeats are compared with: the records
                // after it that repeat it join it.
                let more = Self.repeats(repeated.bytes, repeated.mask, repeated.length, repeated.size, buf, &pos, limit, after: &next)
                out[n].runLength = 1 &+ more
                seq &+= UInt64(more)
            }
            n &+= 1
            seq &+= 1
            prev = next
        }
        return n
    }

    /// How many records from `pos` on repeat a store record with delta 0 (its `bytes`
    /// under `mask`, `length` bytes long, storing `size` bytes) back to back, each a
    /// store at the running address `end`: stops before a record that differs, one that
    /// would start at address 0 (a wrap past the top) or end past it, and where fewer
    /// than 64 bytes are left (`limit`). Moves `pos` and `end` past them.
    @inline(never)
    private static func repeats(_ bytes: UInt32, _ mask: UInt32, _ length: Int, _ size: UInt64,
                                _ buf: UnsafePointer<UInt8>, _ pos: inout Int, _ limit: Int,
                                after end: inout UInt64) -> UInt32 {
        // The most there can be: records that start at or before `limit`, stores that
        // start at 1...2^64 - size, and a run length that fits (UInt32).
        let a = end
        // Mostly the next record differs (a copy's tail): say so before any arithmetic.
        guard pos <= limit, UnsafeRawPointer(buf + pos).loadUnaligned(as: UInt32.self) & mask == bytes,
              a != 0, a <= 0 &- size
        else { return 0 }
        let most = min(divide(UInt64(limit &- pos), by: UInt64(length)) &+ 1, divide((0 &- size) &- a, by: size) &+ 1,
                       UInt64(UInt32.max &- 2))
        var count: UInt64 = 0
        var p = pos
        if length != 3 {
            // Records of 1, 2 or 4 bytes: sixteen bytes of them compared at a time, then
            // one by one (the 64 bytes past `limit` are there to read).
            var pattern = UInt64(bytes), width = length &* 8
            while width < 64 {
                pattern |= pattern &<< UInt64(width)
                width &*= 2
            }
            let perWord = UInt64(8 >> length.trailingZeroBitCount)
            while count &+ 2 &* perWord <= most && UnsafeRawPointer(buf + p).loadUnaligned(as: UInt64.self) == pattern
                    && UnsafeRawPointer(buf + p + 8).loadUnaligned(as: UInt64.self) == pattern {
                count &+= 2 &* perWord
                p &+= 16
            }
        }
        while count < most && UnsafeRawPointer(buf + p).loadUnaligned(as: UInt32.self) & mask == bytes {
            count &+= 1
            p &+= length
        }
        pos = p
        end = a &+ count &* size
        return UInt32(truncatingIfNeeded: count)
    }

    /// A short store, write-back or fence record the fast path decoded and accepted:
    /// the next record with the same bytes is the same event at the next address.
    struct RepeatedRecord {
        /// The record's bytes (little-endian, at most 4) and the mask that selects them;
        /// a mask of 0 with bytes of 1 matches nothing.
        var bytes: UInt32 = 1
        var mask: UInt32 = 0
        var length = 0
        var kind = EventKind.sfence
        /// 0: no address (a fence); 1: address = prev + delta (a write-back);
        /// 2: the same, and the running address moves past the store's SIZE bytes.
        var mode: UInt8 = 0
        var delta: UInt64 = 0
        var size: UInt64 = 0
        var stack: UInt32 = 0
    }

    private var repeated = RepeatedRecord()

    /// Give a run of back-to-back stores with identical records (a copy loop's body) as
    /// one event (`Event.runLength`), for a replay that applies it whole.
    var coalescesStoreRuns = false

    /// The first event with a stack the fast path has not seen: whether the validator
    /// accepts it (the stack is defined).
    @inline(never)
    private func newStack(_ code: UInt8, seq: UInt64, address: UInt64, size: UInt64, stack: UInt32,
                          thread: UInt32) -> Bool {
        let e = Event(kind: EventKind(unchecked: code), seq: seq, address: address, size: size, stack: stack,
                      thread: thread)
        return validator.event(e, at: .event(seq)) == nil
    }

    /// An op begin or end at `p` (tag read), in its usual shape: a begin with no
    /// source and a name that is the last one seen; checked by the validator and
    /// written to `out`. False (nothing consumed that counts) for anything else.
    @inline(never)
    private func fastOp(_ tag: UInt8, _ buf: UnsafePointer<UInt8>, _ p: inout Int, _ end: Int,
                        _ out: UnsafeMutablePointer<Event>, prev: inout UInt64, seq: UInt64, thread: UInt32,
                        knownStack: inout UInt32) -> Bool {
        guard p + 100 <= end else { return false }
        var e = Event(kind: .opEnd, seq: seq)
        e.thread = thread
        if tag & 0x1F == 10 {
            guard let id = Self.varint(buf, &p) else { return false }
            e.op = id
        } else {
            guard let id = Self.varint(buf, &p), let d = Self.varint(buf, &p), let len = Self.varint(buf, &p) else { return false }
            let flags = buf[p]
            p += 1
            // Only the usual shape: no src, contract written or not, a name that
            // is the last one seen.
            guard flags & 0xE1 == 0, flags & 4 != 0 || flags >> 3 == 0, let c = Contract(rawValue: flags >> 3) else { return false }
            e.kind = .opBegin
            e.op = id
            e.address = prev &+ UInt64(bitPattern: BinaryFormat.unzigzag(d))
            e.size = len
            e.contract = c
            if flags & 4 != 0 { e.flags = Event.Flags.explicitContract }
            if flags & 2 != 0 {
                guard let count = Self.varint(buf, &p), lastNameCount >= 0, count == UInt64(lastNameCount), p + Int(count) <= end,
                      memcmp(lastName, buf + p, Int(count)) == 0
                else { return false }
                p += Int(count)
                e.name = lastNameIndex
            }
        }
        if tag & BinaryFormat.Tag.hasStack != 0 {
            guard let s = Self.varint(buf, &p), s > 0 && s <= UInt64(UInt32.max) else { return false }
            e.stack = UInt32(s)
        }
        // The general path says why one is refused.
        guard validator.opOnMainThread(e, at: .event(seq)) || validator.event(e, at: .event(seq)) == nil else { return false }
        if e.stack != 0 { knownStack = e.stack }
        if e.kind == .opBegin { prev = e.address }
        out.initialize(to: e)
        return true
    }

    /// A varint at `p` (at least 10 bytes readable), or nil when it is longer than 64 bits.
    @inline(__always)
    private static func varint(_ buf: UnsafePointer<UInt8>, _ p: inout Int) -> UInt64? {
        var b = buf[p]
        p &+= 1
        if b < 0x80 { return UInt64(b) }
        var v = UInt64(b & 0x7F)
        var shift: UInt64 = 7
        repeat {
            b = buf[p]
            p &+= 1
            if shift == 63 && b > 1 { return nil }
            v |= UInt64(b & 0x7F) << shift
            shift &+= 7
        } while b >= 0x80
        return v
    }

    /// The stack the fast path last saw accepted, and the accepted IDs below 64 (one
    /// bit each): events with them need no stack check (a defined stack stays defined).
    private var knownStack: UInt32 = 0
    private var knownLowStacks: UInt64 = 0

    /// The raw bytes of the op name read last and its index, so a trace of one routine's
    /// calls interns its name once.
    /// (At most 32 bytes, in memory of the reader's own: no retain to compare them;
    /// a count of -1 when the name is longer.)
    private let lastName = UnsafeMutablePointer<UInt8>.allocate(capacity: 32)
    private var lastNameCount = -1
    private var lastNameIndex: UInt32 = 0

    private func opName() throws(TraceError) -> UInt32 {
        let name = try string(.name)
        let i = intern(name)
        let bytes = TraceText.bytes(of: name)
        lastNameCount = bytes.count <= 32 ? bytes.count : -1
        if bytes.count <= 32 { lastName.update(from: bytes, count: bytes.count) }
        lastNameIndex = i
        return i
    }

    private func intern(_ s: String) -> UInt32 {
        if let i = nameIndex[s] { return i }
        names.append(s)
        let i = UInt32(names.count)
        nameIndex[s] = i
        return i
    }
}
