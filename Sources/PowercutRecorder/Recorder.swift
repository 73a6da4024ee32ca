import CPowercutRecorder
import Glibc
import PowercutTrace

/// Why a recording failed: one line that names what and where.
public struct RecorderError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The routine did something the recorder cannot follow (an undecodable
        /// instruction writing pmem, the instruction budget, a full buffer).
        case recording
        /// The routine or library named cannot be used.
        case routine
        /// A bad argument (a pmem range that overlaps, a nested op).
        case usage
    }
    /// Why a recording stopped, typed (so that no caller matches message text).
    public enum Cause: String, Sendable, Codable {
        /// The instruction budget ran out.
        case budget
        /// An instruction that may write pmem or order stores cannot be placed.
        case unrecordable
        /// An event, data or stack buffer is full.
        case capacity
        /// The routine called exit/exit_group during the recorded call.
        case exited
        /// The routine took SIGTRAP away (its disposition, its mask, a breakpoint) or
        /// installed a signal handler during the call.
        case signals
        /// Anything else (a bad argument, the recorder's setup).
        case other
    }
    public var kind: Kind
    public var cause: Cause
    public var description: String
    public init(_ kind: Kind, _ description: String, cause: Cause = .other) {
        self.kind = kind
        self.cause = cause
        self.description = description
    }

    /// The recorder's last error, with its typed cause.
    static func last(_ kind: Kind) -> RecorderError {
        let cause: Cause = switch pc_error_kind() {
        case Int32(PC_ERR_BUDGET.rawValue): .budget
        case Int32(PC_ERR_UNRECORDABLE.rawValue): .unrecordable
        case Int32(PC_ERR_CAPACITY.rawValue): .capacity
        case Int32(PC_ERR_EXIT.rawValue): .exited
        case Int32(PC_ERR_SIGNALS.rawValue): .signals
        default: .other
        }
        return RecorderError(kind, String(cString: pc_error()), cause: cause)
    }
}

/// The in-process single-step recorder: what the CPU executes during a call, as trace
/// events. It is process-wide (the trap flag and the SIGTRAP handler are), so there is
/// one, `Recorder.shared`, used from one thread at a time.
public final class Recorder: @unchecked Sendable {
    public static let shared = Recorder()

    /// The recorder's state (events, ranges, the open op) is one per process: two
    /// threads recording at once would mix their events. A whole recording — reset,
    /// ranges, the call, the trace — runs inside `exclusive`; it is recursive, so a
    /// recording may nest the recorder's own calls.
    private let lock = RecursiveLock()

    public func exclusive<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private var initialised = false
    private var pmemNames: [UInt64: String] = [:]

    private init() {}

    private func check(_ rc: Int32, _ kind: RecorderError.Kind = .recording) throws(RecorderError) {
        if rc != 0 { throw RecorderError.last(kind) }
    }

    /// Drops everything recorded so far and the pmem ranges.
    public func reset() throws(RecorderError) {
        if !initialised {
            try check(pc_init())
            initialised = true
        }
        pc_reset()
        pmemNames = [:]
    }

    /// Declares [base, base+length) persistent memory (or volatile memory behind the same path).
    public func addPmem(base: UInt64, length: UInt64, name: String? = nil, isVolatile: Bool = false) throws(RecorderError) {
        try check(pc_add_pmem(base, length, isVolatile ? 1 : 0), .usage)
        if let name { pmemNames[base] = name }
    }

    /// Traps allowed per recorded call; 0 for no limit.
    public func setBudget(_ instructions: UInt64) { pc_set_budget(instructions) }

    /// Keep the bytes each store wrote (`data=` in the trace).
    public func setCaptureData(_ on: Bool) { pc_set_capture_data(on ? 1 : 0) }

    /// Marks the start of one call of a copy routine; returns the op's ID.
    @discardableResult
    public func beginOp(dst: UInt64, length: UInt64, name: String?, contract: Contract) throws(RecorderError) -> UInt64 {
        let c: pc_contract = switch contract {
        case .flushcache: PC_CONTRACT_FLUSHCACHE
        case .persist: PC_CONTRACT_PERSIST
        case .none: PC_CONTRACT_NONE
        }
        let id = name.map { pc_op_begin_named(dst, length, $0, c) } ?? pc_op_begin(dst, length, c)
        if id < 0 { throw RecorderError(.usage, String(cString: pc_error())) }
        return UInt64(id)
    }

    public func endOp() throws(RecorderError) { try check(pc_op_end(), .usage) }

    /// Single-steps one call `fn(dst, src, n)`.
    public func record(_ fn: pc_fn3, dst: UnsafeMutableRawPointer, src: UnsafeRawPointer, count: Int) throws(RecorderError) {
        try check(pc_record_call3(fn, dst, src, count))
    }

    /// Single-steps a closure (everything it runs, the Swift runtime included, is seen;
    /// only what touches pmem is logged).
    public func record(_ body: () -> Void) throws(RecorderError) {
        try withoutActuallyEscaping(body) { (escapable) throws(RecorderError) in
            var box = escapable
            let rc = withUnsafeMutablePointer(to: &box) { p in
                pc_record_ctx({ ctx in ctx!.assumingMemoryBound(to: (() -> Void).self).pointee() }, p)
            }
            try check(rc)
        }
    }

    /// Executes and records a real sfence: the caller's drain.
    public func drain() throws(RecorderError) {
        try check(powercut_drain())
    }

    /// Signal handlers that ran during the last recorded call (stepped: their stores
    /// are in the trace).
    public var handlersStepped: UInt64 { pc_handlers_stepped() }

    /// Instructions single-stepped since the process started recording.
    public var instructionsStepped: UInt64 { pc_instructions_stepped() }

    /// Events recorded so far.
    public var eventCount: Int { pc_event_count() }

    /// What was recorded, as a trace. `modules` adds the process's module map (for
    /// symbolizing elsewhere); `meta` goes first in the header.
    public func trace(meta: [(String, String)] = [], modules: Bool = true, domain: Domain? = nil) -> Trace {
        var header = TraceHeader()
        header.records.append(.meta(key: "recorder", value: "powercut \(String(cString: pc_version()))"))
        for (k, v) in meta { header.records.append(.meta(key: k, value: v)) }
        if let domain { header.records.append(.domain(domain)) }
        if modules && pc_collect_modules() == 0 {
            for i in 0..<pc_module_count() {
                let id = String(cString: pc_module_build_id(i))
                header.records.append(.module(Module(path: String(cString: pc_module_path(i)), base: pc_module_base(i),
                                                     size: pc_module_size(i), buildID: id.isEmpty ? nil : id)))
            }
        }
        for i in 0..<pc_pmem_count() {
            var base: UInt64 = 0, length: UInt64 = 0, isVolatile: Int32 = 0
            if pc_pmem_range(i, &base, &length, &isVolatile) == 0 {
                header.records.append(.pmem(PmemRange(base: base, length: length, name: pmemNames[base], isVolatile: isVolatile != 0)))
            }
        }
        var stacks: [UInt32: [UInt64]] = [:]
        for id in 1...max(1, pc_stack_count()) where pc_stack_count() > 0 {
            var frames: UnsafePointer<UInt64>?
            let n = pc_stack_frames(UInt32(id), &frames)
            if let frames, n > 0 {
                let f = Array(UnsafeBufferPointer(start: frames, count: n))
                stacks[UInt32(id)] = f
            }
        }
        // Stacks used by events, defined in the header in ID order.
        let raw = UnsafeBufferPointer(start: pc_events(), count: pc_event_count())
        var used = Set<UInt32>()
        for e in raw where e.stack != 0 { used.insert(e.stack) }
        for id in used.sorted() { header.records.append(.stack(id: id, frames: stacks[id] ?? [])) }

        var events: [Event] = []
        events.reserveCapacity(raw.count)
        var data: [UInt8] = []
        var names: [String] = []
        var nameIndex: [String: UInt32] = [:]
        let pool = pc_data()
        for (seq, r) in raw.enumerated() {
            var e = Event(kind: Self.kind(r.kind), seq: UInt64(seq), address: r.addr, size: r.size, stack: r.stack)
            switch e.kind {
            case .opBegin:
                e.op = r.op_id
                e.contract = Contract(rawValue: r.contract) ?? .flushcache
                e.flags |= Event.Flags.explicitContract
                e.size = r.size
                if let n = pc_op_name(r.op_id) {
                    let name = String(cString: n)
                    if let i = nameIndex[name] { e.name = i } else {
                        names.append(name)
                        e.name = UInt32(names.count)
                        nameIndex[name] = e.name
                    }
                }
            case .opEnd:
                e.op = r.op_id
                e.size = 0
            case .store, .ntstore:
                if r.data_offset != UInt64.max, let pool {
                    e.flags |= Event.Flags.hasData
                    e.dataOffset = UInt32(data.count)
                    data.append(contentsOf: UnsafeBufferPointer(start: pool + Int(r.data_offset), count: Int(r.size)))
                }
            default:
                e.size = 0
                if !e.kind.isWriteBack { e.address = 0 }
            }
            events.append(e)
        }
        return Trace(header: header, events: events, data: data, names: names, stacks: stacks.filter { used.contains($0.key) })
    }

    private static func kind(_ k: UInt8) -> EventKind {
        switch Int(k) {
        case Int(PC_STORE.rawValue): .store
        case Int(PC_NTSTORE.rawValue): .ntstore
        case Int(PC_CLWB.rawValue): .clwb
        case Int(PC_CLFLUSHOPT.rawValue): .clflushopt
        case Int(PC_CLFLUSH.rawValue): .clflush
        case Int(PC_SFENCE.rawValue): .sfence
        case Int(PC_MFENCE.rawValue): .mfence
        case Int(PC_FENCE.rawValue): .fence
        case Int(PC_WPQFLUSH.rawValue): .wpqflush
        case Int(PC_OP_BEGIN.rawValue): .opBegin
        default: .opEnd
        }
    }
}


/// A recursive mutex (pthread), for `Recorder.exclusive`.
final class RecursiveLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()

    init() {
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(&mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    func lock() { pthread_mutex_lock(&mutex) }
    func unlock() { pthread_mutex_unlock(&mutex) }
}
