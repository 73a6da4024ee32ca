// The records of a powercut trace, shared by the text and binary forms.
//
// A trace is a header (line size, domain, pmem ranges, modules, stacks, meta) followed
// by a stream of events. Events are plain values with no references, so a reader can
// hand them out in batches and the replayer can walk them without retain/release
// traffic; the few strings an event needs (an op's name) are interned by the reader.

/// What an event record does. The raw values are the binary format's event codes.
public enum EventKind: UInt8, Sendable, CaseIterable {
    case store = 0
    case ntstore = 1
    case clwb = 2
    case clflushopt = 3
    case clflush = 4
    case sfence = 5
    case mfence = 6
    case fence = 7
    case wpqflush = 8
    case opBegin = 9
    case opEnd = 10
    case durable = 11
    /// Not an event: a `stack` record that appeared between events. It takes no
    /// sequence number; readers keep it in the stream so a conversion loses nothing.
    case stackDefinition = 12
    /// `mark NAME`: a named point in the run (a user's marker, pmemcheck's EMIT_LOG).
    /// `name` holds the interned name.
    case mark = 13
    /// `pmem BASE LEN [name=S] [volatile]` between events: a range tracked from here on.
    /// `address`/`size` hold BASE/LEN, `name` the interned name, `Flags.isVolatile`.
    case pmem = 14
    /// `pmem-release BASE LEN`: the range declared with exactly this BASE and LEN stops
    /// being tracked.
    case pmemRelease = 15

    /// The record keyword in the text form.
    /// The kind with this code, known to be below 16.
    @inline(__always)
    init(unchecked code: UInt8) { self = unsafeBitCast(code, to: EventKind.self) }

    public var keyword: String {
        switch self {
        case .store: "store"
        case .ntstore: "ntstore"
        case .clwb: "clwb"
        case .clflushopt: "clflushopt"
        case .clflush: "clflush"
        case .sfence: "sfence"
        case .mfence: "mfence"
        case .fence: "fence"
        case .wpqflush: "wpqflush"
        case .opBegin, .opEnd: "op"
        case .durable: "durable"
        case .stackDefinition: "stack"
        case .mark: "mark"
        case .pmem: "pmem"
        case .pmemRelease: "pmem-release"
        }
    }

    public var isStore: Bool { self == .store || self == .ntstore }
    public var isWriteBack: Bool { self == .clwb || self == .clflushopt || self == .clflush }
    public var isFence: Bool { self == .sfence || self == .mfence || self == .fence }
    /// Markers are numbered like events but change no byte.
    public var isMarker: Bool {
        self == .opBegin || self == .opEnd || self == .durable || self == .mark || self == .pmem || self == .pmemRelease
    }
}

/// What a copy routine promises about its destination range (Docs/model.md).
public enum Contract: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case flushcache = 0
    case persist = 1
    case none = 2

    public var description: String {
        switch self {
        case .flushcache: "flushcache"
        case .persist: "persist"
        case .none: "none"
        }
    }

    public init?(name: String) {
        switch name {
        case "flushcache": self = .flushcache
        case "persist": self = .persist
        case "none": self = .none
        default: return nil
        }
    }
}

/// Which parts of the memory hierarchy survive a power failure.
public enum Domain: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case adr = 0
    case eadr = 1
    case wpq = 2

    public var description: String {
        switch self {
        case .adr: "adr"
        case .eadr: "eadr"
        case .wpq: "wpq"
        }
    }

    public init?(name: String) {
        switch name {
        case "adr": self = .adr
        case "eadr": self = .eadr
        case "wpq": self = .wpq
        default: return nil
        }
    }
}

/// One event record. A trivially copyable value; see `EventKind` for what the fields
/// mean per kind.
public struct Event: Equatable, Sendable {
    public var kind: EventKind
    /// For `opBegin`: the op's contract.
    public var contract: Contract
    /// `Event.Flags`.
    public var flags: UInt8
    /// The call stack ID (0: none).
    public var stack: UInt32
    /// The event's number, `#N` in reports. A stack definition carries the number the
    /// next event will get.
    public var seq: UInt64
    /// store/ntstore/write-back/durable: the address; opBegin: dst; stack definition: its ID.
    public var address: UInt64
    /// store/ntstore: SIZE; durable: LEN; opBegin: len.
    public var size: UInt64
    /// opBegin/opEnd: the op ID. store/ntstore: how many more stores a coalesced run
    /// holds (0 unless the reader coalesces; read it as `runLength`).
    public var op: UInt64
    /// opBegin: src, when `hasSource`.
    public var source: UInt64
    /// opBegin, mark, pmem: index + 1 into the reader's interned names (0: no name).
    public var name: UInt32
    /// store/ntstore with `hasData`: offset of the SIZE data bytes in the batch's data pool.
    public var dataOffset: UInt32
    /// The thread that executed the event (`thread=N`; 0 when the trace names none).
    public var thread: UInt32

    public struct Flags {
        public static let hasData: UInt8 = 1
        public static let hasSource: UInt8 = 2
        /// `contract=` was written out (kept so a conversion round trip is exact).
        public static let explicitContract: UInt8 = 4
        /// pmem between events: the range is `volatile`.
        public static let isVolatile: UInt8 = 8
    }

    public init(kind: EventKind, seq: UInt64 = 0, address: UInt64 = 0, size: UInt64 = 0, stack: UInt32 = 0) {
        self.init(kind: kind, seq: seq, address: address, size: size, stack: stack, thread: 0)
    }

    /// The fields a store, write-back or fence has, all at once (the binary reader's fast path).
    @inline(__always)
    init(kind: EventKind, seq: UInt64, address: UInt64, size: UInt64, stack: UInt32, thread: UInt32) {
        self.kind = kind
        self.contract = .flushcache
        self.flags = 0
        self.stack = stack
        self.seq = seq
        self.address = address
        self.size = size
        self.op = 0
        self.source = 0
        self.name = 0
        self.dataOffset = 0
        self.thread = thread
    }

    /// store/ntstore: how many stores of SIZE bytes this event stands for, back to back:
    /// store i (from 0) covers SIZE bytes at address + i × SIZE and is event seq + i,
    /// with the same kind, stack and thread. Always 1 unless the reader was asked to
    /// coalesce such runs (`TraceReader.coalescesStoreRuns`); `member(_:)` gives each.
    /// Kept in `op`, which a store has no other use for (an `Event` stays 64 bytes).
    @inline(__always)
    public var runLength: UInt32 {
        get { kind.rawValue <= EventKind.ntstore.rawValue ? UInt32(truncatingIfNeeded: op) &+ 1 : 1 }
        set { op = UInt64(newValue &- 1) }
    }

    /// Store i (from 0) of a coalesced run, as the event it was in the trace.
    @inline(__always)
    public func member(_ i: UInt32) -> Event {
        var e = self
        e.address = address &+ UInt64(i) &* size
        e.seq = seq &+ UInt64(i)
        e.runLength = 1
        return e
    }

    /// Calls `body` with each event this one stands for: itself, or each store of a run.
    @inline(__always)
    public func forEachMember(_ body: (Event) throws -> Void) rethrows {
        if runLength == 1 { return try body(self) }
        for i in 0..<runLength { try body(member(i)) }
    }

    public var hasData: Bool { flags & Flags.hasData != 0 }
    public var hasSource: Bool { flags & Flags.hasSource != 0 }
    public var hasExplicitContract: Bool { flags & Flags.explicitContract != 0 }
    public var isVolatile: Bool { flags & Flags.isVolatile != 0 }
}

/// A declared range of persistent memory.
public struct PmemRange: Equatable, Sendable {
    public var base: UInt64
    public var length: UInt64
    public var name: String?
    /// DRAM or a RAM disk behind the same code path: nothing needs flushing.
    public var isVolatile: Bool

    public init(base: UInt64, length: UInt64, name: String? = nil, isVolatile: Bool = false) {
        self.base = base
        self.length = length
        self.name = name
        self.isVolatile = isVolatile
    }

    /// One past the last byte; `UInt64.max` stands for 2^64 when the range ends at the top.
    public var end: UInt64 { base &+ length == 0 ? UInt64.max : base + length }
    public func contains(_ address: UInt64) -> Bool { address >= base && address - base < length }
}

/// A loaded object, for symbolization elsewhere.
public struct Module: Equatable, Sendable {
    public var path: String
    public var base: UInt64
    public var size: UInt64
    public var buildID: String?

    public init(path: String, base: UInt64, size: UInt64, buildID: String? = nil) {
        self.path = path
        self.base = base
        self.size = size
        self.buildID = buildID
    }

    public func contains(_ address: UInt64) -> Bool { address >= base && address - base < size }
}

/// A header record, kept in file order so conversions are exact.
public enum HeaderRecord: Equatable, Sendable {
    case lineSize(UInt64)
    case domain(Domain)
    case pmem(PmemRange)
    case module(Module)
    case stack(id: UInt32, frames: [UInt64])
    case meta(key: String, value: String)
    /// `init ADDR data=HEX`: the content of tracked memory before the first event.
    case initial(address: UInt64, data: [UInt8])
}

/// Everything before the first event.
public struct TraceHeader: Equatable, Sendable {
    public var records: [HeaderRecord]

    public init(records: [HeaderRecord] = []) { self.records = records }

    public static let defaultLineSize: UInt64 = 64

    public var lineSize: UInt64 {
        for case .lineSize(let n) in records { return n }
        return Self.defaultLineSize
    }
    /// The domain the trace names, if it names one.
    public var declaredDomain: Domain? {
        for case .domain(let d) in records { return d }
        return nil
    }
    public var domain: Domain { declaredDomain ?? .adr }
    public var pmem: [PmemRange] {
        records.compactMap { if case .pmem(let r) = $0 { r } else { nil } }
    }
    public var modules: [Module] {
        records.compactMap { if case .module(let m) = $0 { m } else { nil } }
    }
    public var meta: [(key: String, value: String)] {
        records.compactMap { if case .meta(let k, let v) = $0 { (k, v) } else { nil } }
    }
}

/// A batch of events as a reader hands them out, with the data bytes they point into.
public struct EventBatch: Sendable {
    public var events: [Event] = []
    public var data: [UInt8] = []

    public init() {}

    public mutating func removeAll() {
        events.removeAll(keepingCapacity: true)
        data.removeAll(keepingCapacity: true)
    }

    /// The data bytes of a store that has them.
    public func data(of event: Event) -> ArraySlice<UInt8> {
        let start = Int(event.dataOffset)
        return data[start..<start + Int(event.size)]
    }

    /// Replaces the events with up to `max` new ones that `decode` writes straight into
    /// the new array's storage (no staging copy), keeping the data pool's storage;
    /// `decode` counts what it wrote in `count`, also when it throws.
    @inline(__always)
    mutating func refill(max: Int, _ decode: (UnsafeMutablePointer<Event>, Int, inout Int, inout [UInt8]) throws(TraceError) -> Bool) throws(TraceError) -> Bool {
        var failure: TraceError?
        var more = false
        var pool: [UInt8] = []
        swap(&pool, &data)
        events = []  // gives its storage back, for the new array to reuse
        events = Array(unsafeUninitializedCapacity: max) { buffer, count in
            do throws(TraceError) {
                more = try decode(buffer.baseAddress!, max, &count, &pool)
            } catch {
                failure = error
            }
        }
        swap(&pool, &data)
        if let failure { throw failure }
        return more
    }
}
