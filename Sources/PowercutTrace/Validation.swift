/// The checks both readers make, whatever the form: ops that nest or repeat, stacks
/// used before they are defined, overlapping pmem ranges, bad sizes, strings the form
/// cannot hold. One place, so the text and binary forms accept exactly the same traces
/// and a conversion never writes what its own reader rejects.
struct TraceValidator {
    static let maxStoreSize: UInt64 = 1 << 20
    /// An `init` record's content: the canonical text line (`init 0x… data=…`) stays
    /// under the 8 MiB line limit.
    static let maxInitLength: UInt64 = 4 << 20 - 16
    /// Frames of one stack.
    static let maxFrames = 1 << 16
    /// A line of the text form.
    static let maxLineLength = 8 << 20

    private(set) var stacks: [UInt32: [UInt64]] = [:]
    /// Which stack IDs below 65,536 are defined, one bit each: the usual IDs are
    /// checked without hashing.
    private var definedLow = [UInt64](repeating: 0, count: 1024)
    /// The pmem ranges tracked at this point.
    private var tracked = RangeTree()
    private var usedOps = OpIDSet()
    /// The op each thread has open: its ID and where it began.
    private var openOps = OpenOps()
    private var lastStack: UInt32 = 0
    /// `init` records, checked when the header ends (header records come in any order).
    private var inits: [(address: UInt64, length: UInt64, at: Location)] = []

    /// Where a record is: a line of a text trace, a byte of a binary one, or an event.
    enum Location: CustomStringConvertible {
        case line(Int)
        case byte(UInt64)
        case event(UInt64)
        var description: String {
            switch self {
            case .line(let n): "line \(n)"
            case .byte(let n): "byte \(n)"
            case .event(let n): "event #\(n)"
            }
        }
        /// The location part of a `TraceError` (`file:12:` or `file:byte 80:`).
        var errorLocation: String {
            switch self {
            case .line(let n): String(n)
            case .byte(let n): "byte \(n)"
            case .event(let n): "event #\(n)"
            }
        }
    }
    private(set) var sawLineSize = false
    private(set) var sawDomain = false

    mutating func header(_ record: HeaderRecord, at: Location) -> String? {
        switch record {
        case .lineSize(let n):
            if sawLineSize { return "line-size given twice (keep one)" }
            sawLineSize = true
            if n < 16 || n > 4096 || n & (n - 1) != 0 {
                return "line-size \(n) is not a power of two from 16 to 4096 (expected e.g. 'line-size 64')"
            }
        case .domain:
            if sawDomain { return "domain given twice (keep one)" }
            sawDomain = true
        case .pmem(let r):
            return track(base: r.base, length: r.length, isVolatile: r.isVolatile)
        case .module(let m):
            if m.size == 0 { return "module \(TraceText.quote(m.path)) has size 0 (expected SIZE > 0)" }
            if m.base.addingReportingOverflow(m.size - 1).overflow {
                return "module \(TraceText.quote(m.path)) at 0x\(hex(m.base)) + 0x\(hex(m.size)) runs past the end of the 64-bit address space"
            }
        case .stack(let id, let frames):
            return defineStack(id, frames)
        case .meta:
            break
        case .initial(let address, let data):
            let n = UInt64(data.count)
            if n == 0 { return "init at 0x\(hex(address)) has no data (expected data=HEX, at least one byte)" }
            if n > Self.maxInitLength {
                return "init at 0x\(hex(address)) holds \(n) bytes (at most \(Self.maxInitLength); split the content over several init records)"
            }
            if address.addingReportingOverflow(n - 1).overflow {
                return "init at 0x\(hex(address)) of \(n) bytes runs past the end of the 64-bit address space"
            }
            inits.append((address, n, at))
        }
        return nil
    }

    /// Checked when the header ends: every `init` lies inside one non-volatile range
    /// and no two overlap. Returns the first problem and where its record is.
    mutating func endHeader() -> (at: Location, message: String)? {
        guard !inits.isEmpty else { return nil }
        for i in inits {
            let last = i.address &+ (i.length - 1)
            let where_ = "init 0x\(hex(i.address))+0x\(hex(i.length))"
            guard let r = tracked.range(containing: i.address), last <= r.last else {
                return (i.at, "\(where_) is not inside one pmem range (init gives the content of tracked memory; declare the range with 'pmem BASE LEN' or split the init)")
            }
            if r.isVolatile {
                return (i.at, "\(where_) lies in the volatile range 0x\(hex(r.base))+0x\(hex(r.length)) (init gives the content of non-volatile memory)")
            }
        }
        let sorted = inits.sorted { $0.address < $1.address }
        for k in sorted.indices.dropFirst() where sorted[k - 1].address &+ (sorted[k - 1].length - 1) >= sorted[k].address {
            let (a, b) = (sorted[k - 1], sorted[k])
            let later = a.at.isBefore(b.at) ? b : a, earlier = a.at.isBefore(b.at) ? a : b
            return (later.at, "init 0x\(hex(later.address))+0x\(hex(later.length)) overlaps init 0x\(hex(earlier.address))+0x\(hex(earlier.length)) at \(earlier.at) (init records do not overlap)")
        }
        inits = []
        return nil
    }

    /// Starts tracking a range (a header `pmem` or one between events).
    private mutating func track(base: UInt64, length: UInt64, isVolatile: Bool) -> String? {
        if length == 0 { return "pmem range at 0x\(hex(base)) has length 0 (expected LEN > 0)" }
        if base.addingReportingOverflow(length - 1).overflow {
            return "pmem range 0x\(hex(base)) + 0x\(hex(length)) runs past the end of the 64-bit address space"
        }
        let r = RangeTree.Range(base: base, length: length, isVolatile: isVolatile)
        if let other = tracked.overlap(r) {
            return "pmem range 0x\(hex(base))+0x\(hex(length)) overlaps range 0x\(hex(other.base))+0x\(hex(other.length)) (ranges tracked at the same time must not overlap)"
        }
        tracked.insert(r)
        return nil
    }

    mutating func defineStack(_ id: UInt32, _ frames: [UInt64]) -> String? {
        if id == 0 { return "stack ID 0 is reserved (number stacks from 1)" }
        if frames.isEmpty { return "stack \(id) has no frames (expected 'stack ID IP [IP …]')" }
        if frames.count > Self.maxFrames { return "stack \(id) has \(frames.count) frames (at most \(Self.maxFrames))" }
        if stacks[id] != nil { return "stack \(id) is defined twice (stack IDs are unique)" }
        stacks[id] = frames
        if id < 65536 { definedLow[Int(id >> 6)] |= 1 << UInt64(id & 63) }
        return nil
    }

    /// Checks an event; `at` names its place for messages about ops left open. The
    /// common events are checked inline; markers go to `marker`.
    @inline(__always)
    mutating func event(_ e: Event, at: Location) -> String? {
        if e.stack != 0 && e.stack != lastStack {
            if !isDefined(stack: e.stack) { return undefinedStack(e.stack) }
            lastStack = e.stack
        }
        switch e.kind {
        case .store, .ntstore:
            return Self.storeFits(address: e.address, size: e.size) ? nil : badStore(e)
        case .stackDefinition, .clwb, .clflushopt, .clflush, .sfence, .mfence, .fence, .wpqflush:
            return nil
        case .opBegin, .opEnd, .durable, .mark, .pmem, .pmemRelease:
            return marker(e, at: at)
        }
    }

    /// `event(_:at:)` for the usual op begin or end, made and accepted in a few steps: on
    /// thread 0, with a stack already checked, a begin with no op open and an ID above
    /// every ID so far, an end of the open op. False (nothing changed) for any other,
    /// which `event(_:at:)` then judges.
    @inline(__always)
    mutating func opOnMainThread(_ e: Event, at: Location) -> Bool {
        guard e.thread == 0, e.stack == 0 || e.stack == lastStack else { return false }
        if e.kind == .opEnd {
            guard let open = openOps[0], open.id == e.op else { return false }
            openOps[0] = nil
            return true
        }
        guard e.kind == .opBegin, openOps[0] == nil, e.size == 0 || e.address &+ (e.size &- 1) >= e.address,
              usedOps.insertAboveAll(e.op)
        else { return false }
        openOps[0] = (e.op, at)
        return true
    }

    /// Whether a stack ID names a stack defined so far.
    @inline(__always)
    func isDefined(stack id: UInt32) -> Bool {
        id < 65536 ? definedLow.withUnsafeBufferPointer { $0[Int(id >> 6)] } & (1 << UInt64(id & 63)) != 0 : stacks[id] != nil
    }

    /// Whether a store's SIZE is in range and its bytes lie inside the address space.
    @inline(__always)
    static func storeFits(address: UInt64, size: UInt64) -> Bool {
        size &- 1 < maxStoreSize && address &+ (size &- 1) >= address
    }

    @inline(never)
    private func undefinedStack(_ id: UInt32) -> String {
        "stack=\(id) names a stack that is not defined (define 'stack \(id) IP …' before its first use)"
    }

    @inline(never)
    private func badStore(_ e: Event) -> String {
        if e.size == 0 || e.size > Self.maxStoreSize {
            return "\(e.kind.keyword) SIZE \(e.size) is out of range (expected 1 to \(Self.maxStoreSize))"
        }
        return "\(e.kind.keyword) at 0x\(hex(e.address)) of \(e.size) bytes runs past the end of the 64-bit address space"
    }

    @inline(never)
    private mutating func marker(_ e: Event, at: Location) -> String? {
        switch e.kind {
        case .durable:
            if e.size == 0 { return "durable LEN is 0 (expected LEN > 0)" }
            if e.address.addingReportingOverflow(e.size - 1).overflow {
                return "durable range 0x\(hex(e.address)) + \(e.size) runs past the end of the 64-bit address space"
            }
        case .opBegin:
            if let open = openOps[e.thread] {
                let who = e.thread == 0 ? "" : " on thread \(e.thread)"
                return "op \(e.op) begins while op \(open.id) (begun at \(open.at)) is still open\(who) (ops of one thread do not nest; end op \(open.id) first)"
            }
            if usedOps.contains(e.op) { return "op ID \(e.op) is used twice (op IDs are unique)" }
            if e.size > 0 && e.address.addingReportingOverflow(e.size - 1).overflow {
                return "op \(e.op) range dst=0x\(hex(e.address)) len=\(e.size) runs past the end of the 64-bit address space"
            }
            usedOps.insert(e.op)
            openOps[e.thread] = (e.op, at)
        case .opEnd:
            guard let open = openOps[e.thread] else {
                if let other = openOps.all.first(where: { $0.value.id == e.op }) {
                    return "op \(e.op) end on thread \(e.thread), but thread \(other.key) began it (at \(other.value.at)); an op ends on the thread that began it"
                }
                return "op \(e.op) end without a matching 'op \(e.op) begin'"
            }
            if open.id != e.op {
                return "op \(e.op) end while op \(open.id) (begun at \(open.at)) is open (expected 'op \(open.id) end')"
            }
            openOps[e.thread] = nil
        case .pmem:
            return track(base: e.address, length: e.size, isVolatile: e.isVolatile)
        case .pmemRelease:
            if e.size == 0 { return "pmem-release LEN is 0 (expected the BASE and LEN of a tracked range)" }
            guard let r = tracked.floor(e.address), r.base == e.address, r.length == e.size else {
                let near = tracked.range(containing: e.address).map { " (the range tracked there is 0x\(hex($0.base))+0x\(hex($0.length)))" } ?? ""
                return "pmem-release 0x\(hex(e.address))+0x\(hex(e.size)) names no tracked range\(near) (expected exactly the BASE and LEN of a pmem range tracked at this point)"
            }
            _ = tracked.remove(base: r.base)
        default:
            break
        }
        return nil
    }

    /// Checked when the trace ends.
    func finish() -> String? {
        if let open = openOps.all.map(\.value).min(by: { $0.at.isBefore($1.at) }) {
            return "op \(open.id) begun at \(open.at) is never ended (expected 'op \(open.id) end' before the end of the trace)"
        }
        return nil
    }

    // MARK: Strings

    /// The strings of a trace, each with its rules.
    enum StringField {
        case modulePath, buildID, metaKey, metaValue, name, markName

        var what: String {
            switch self {
            case .modulePath: "module path"
            case .buildID: "build-id"
            case .metaKey: "meta key"
            case .metaValue: "meta value"
            case .name: "name"
            case .markName: "mark name"
            }
        }
    }

    /// Why `bytes` cannot be the given string, or nil. Any byte may appear in a path,
    /// name or meta value (the text form escapes it); the limits keep every record of
    /// the text form under its line limit.
    static func stringProblem(_ bytes: UnsafeBufferPointer<UInt8>, _ field: StringField) -> String? {
        if bytes.count > TraceText.maxLength {
            return "\(field.what) of \(bytes.count) bytes is too long (at most \(TraceText.maxLength))"
        }
        switch field {
        case .modulePath, .markName:
            if bytes.isEmpty { return "empty \(field.what) (expected at least one byte)" }
        case .buildID:
            if bytes.isEmpty || !bytes.allSatisfy({ hexDigit($0) != nil }) {
                return "bad build-id '\(TraceText.quote(bytes))' (expected hex digits only)"
            }
        case .metaKey:
            if bytes.isEmpty || bytes.count > 255
                || bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F || $0 == 0x23 || $0 == 0x5C }) || !TraceText.isPrintableUTF8(bytes) {
                return "bad meta key '\(TraceText.quote(bytes))' (expected 1 to 255 bytes of printable UTF-8 without spaces, control characters, '#' or '\\')"
            }
        case .metaValue, .name:
            break
        }
        return nil
    }

    static func stringProblem(_ s: String, _ field: StringField) -> String? {
        TraceText.bytes(of: s).withUnsafeBufferPointer { stringProblem($0, field) }
    }

    /// The string problems of a header record, for writers (readers check as they decode).
    static func stringProblem(_ record: HeaderRecord) -> String? {
        switch record {
        case .module(let m):
            return stringProblem(m.path, .modulePath) ?? m.buildID.flatMap { stringProblem($0, .buildID) }
        case .pmem(let r):
            return r.name.flatMap { stringProblem($0, .name) }
        case .meta(let k, let v):
            return stringProblem(k, .metaKey) ?? stringProblem(v, .metaValue)
        case .lineSize, .domain, .stack, .initial:
            return nil
        }
    }
}

extension TraceValidator.Location {
    /// File order: lines, bytes and events each compare with their own kind.
    func isBefore(_ other: Self) -> Bool {
        switch (self, other) {
        case (.line(let a), .line(let b)): a < b
        case (.byte(let a), .byte(let b)): a < b
        case (.event(let a), .event(let b)): a < b
        default: false
        }
    }
}

/// The op each thread has open. Thread 0 (every single-threaded trace) has a slot of
/// its own, so the common case costs no hashing.
struct OpenOps {
    typealias Op = (id: UInt64, at: TraceValidator.Location)
    private var main: Op?
    private var others: [UInt32: Op] = [:]

    subscript(thread: UInt32) -> Op? {
        get { thread == 0 ? main : others[thread] }
        set { if thread == 0 { main = newValue } else { others[thread] = newValue } }
    }

    var all: [(key: UInt32, value: Op)] {
        (main.map { [(key: UInt32(0), value: $0)] } ?? []) + others.map { (key: $0.key, value: $0.value) }
    }
}

/// Op IDs seen so far: IDs that count up (the usual case) cost one interval however
/// many there are; IDs that come out of order go to a hash set, so no insertion is
/// worse than O(1) amortized.
struct OpIDSet {
    private var ascending = IntervalSet()
    private var scattered = Set<UInt64>()

    func contains(_ x: UInt64) -> Bool { ascending.contains(x) || (!scattered.isEmpty && scattered.contains(x)) }

    mutating func insert(_ x: UInt64) {
        if !ascending.appendIfAscending(x) { scattered.insert(x) }
    }

    /// Inserts `x` when it is above every ID so far (so not one of them); false, and
    /// nothing changed, otherwise. (`scattered` only holds IDs below the top of
    /// `ascending`.)
    mutating func insertAboveAll(_ x: UInt64) -> Bool { ascending.appendIfAscending(x) }
}

/// A set of integers kept as sorted, merged intervals: op IDs that count up cost one
/// interval however many there are.
struct IntervalSet {
    private var ranges: [(lo: UInt64, hi: UInt64)] = []

    func contains(_ x: UInt64) -> Bool {
        guard let i = index(of: x) else { return false }
        return ranges[i].lo <= x && x <= ranges[i].hi
    }

    /// The last interval whose lower end is <= x.
    private func index(of x: UInt64) -> Int? {
        if let last = ranges.last, last.lo <= x { return ranges.count - 1 }
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].lo <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : lo - 1
    }

    /// Adds `x` when it lies above every interval (extending the last one or starting
    /// a new one); false otherwise.
    mutating func appendIfAscending(_ x: UInt64) -> Bool {
        guard let last = ranges.last else {
            ranges.append((x, x))
            return true
        }
        guard x > last.hi else { return false }
        if x == last.hi + 1 { ranges[ranges.count - 1].hi = x } else { ranges.append((x, x)) }
        return true
    }

    mutating func insert(_ x: UInt64) {
        if let i = index(of: x) {
            if x <= ranges[i].hi { return }
            if x == ranges[i].hi + 1 {
                ranges[i].hi = x
                if i + 1 < ranges.count && ranges[i + 1].lo == x + 1 {
                    ranges[i].hi = ranges[i + 1].hi
                    ranges.remove(at: i + 1)
                }
                return
            }
            if i + 1 < ranges.count && ranges[i + 1].lo == x + 1 {
                ranges[i + 1].lo = x
                return
            }
            ranges.insert((x, x), at: i + 1)
        } else if let first = ranges.first, first.lo == x + 1 {
            ranges[0].lo = x
        } else {
            ranges.insert((x, x), at: 0)
        }
    }
}

/// Lower-case hex without a prefix.
@inline(__always)
public func hex(_ v: UInt64) -> String { String(v, radix: 16) }

/// a / b for b > 0, by a shift when b is a power of two (a store's size and a record's
/// length mostly are): a division takes tens of cycles, and the decoder's and the
/// model's run paths take one per run or line.
@inlinable @inline(__always)
public func divide(_ a: UInt64, by b: UInt64) -> UInt64 {
    b & (b &- 1) == 0 ? a >> UInt64(b.trailingZeroBitCount) : a / b
}
