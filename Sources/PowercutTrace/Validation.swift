/// The checks both readers make, whatever the form: ops that nest or repeat, stacks
/// used before they are defined, overlapping pmem ranges, bad sizes. One place, so the
/// text and binary forms accept exactly the same traces.
struct TraceValidator {
    static let maxStoreSize: UInt64 = 1 << 20

    private(set) var stacks: [UInt32: [UInt64]] = [:]
    private(set) var pmem: [PmemRange] = []
    private var usedOps = IntervalSet()
    /// The op now open: its ID and where it began.
    private(set) var openOp: (id: UInt64, at: Location)?
    private var lastStack: UInt32 = 0

    /// Where a record is: a line of a text trace or an event of a binary one.
    enum Location: CustomStringConvertible {
        case line(Int)
        case event(UInt64)
        var description: String {
            switch self {
            case .line(let n): "line \(n)"
            case .event(let n): "event #\(n)"
            }
        }
    }
    private(set) var sawLineSize = false
    private(set) var sawDomain = false

    mutating func header(_ record: HeaderRecord) -> String? {
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
            if r.length == 0 { return "pmem range at 0x\(hex(r.base)) has length 0 (expected LEN > 0)" }
            if r.base.addingReportingOverflow(r.length - 1).overflow {
                return "pmem range 0x\(hex(r.base)) + 0x\(hex(r.length)) runs past the end of the 64-bit address space"
            }
            for other in pmem where r.base <= other.base &+ (other.length - 1) && other.base <= r.base &+ (r.length - 1) {
                return "pmem range 0x\(hex(r.base))+0x\(hex(r.length)) overlaps range 0x\(hex(other.base))+0x\(hex(other.length)) (ranges must not overlap)"
            }
            pmem.append(r)
        case .module(let m):
            if m.size == 0 { return "module \(m.path) has size 0 (expected SIZE > 0)" }
        case .stack(let id, let frames):
            return defineStack(id, frames)
        case .meta:
            break
        case .initial:
            break // TODO(trace): checks of init records
        }
        return nil
    }

    mutating func defineStack(_ id: UInt32, _ frames: [UInt64]) -> String? {
        if id == 0 { return "stack ID 0 is reserved (number stacks from 1)" }
        if frames.isEmpty { return "stack \(id) has no frames (expected 'stack ID IP [IP …]')" }
        if stacks[id] != nil { return "stack \(id) is defined twice (stack IDs are unique)" }
        stacks[id] = frames
        return nil
    }

    /// Checks an event; `at` names its place for messages about ops left open. The
    /// common events are checked inline; markers go to `marker`.
    @inline(__always)
    mutating func event(_ e: Event, at: Location) -> String? {
        if e.stack != 0 && e.stack != lastStack {
            if stacks[e.stack] == nil { return undefinedStack(e.stack) }
            lastStack = e.stack
        }
        switch e.kind {
        case .store, .ntstore:
            if e.size == 0 || e.size > Self.maxStoreSize || e.address &+ (e.size - 1) < e.address { return badStore(e) }
            return nil
        case .stackDefinition, .clwb, .clflushopt, .clflush, .sfence, .mfence, .fence, .wpqflush:
            return nil
        case .opBegin, .opEnd, .durable:
            return marker(e, at: at)
        case .mark, .pmem, .pmemRelease:
            return nil // TODO(trace): checks of the new records
        }
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
            if let open = openOp {
                return "op \(e.op) begins while op \(open.id) (begun at \(open.at)) is still open (ops do not nest; end op \(open.id) first)"
            }
            if usedOps.contains(e.op) { return "op ID \(e.op) is used twice (op IDs are unique)" }
            if e.size > 0 && e.address.addingReportingOverflow(e.size - 1).overflow {
                return "op \(e.op) range dst=0x\(hex(e.address)) len=\(e.size) runs past the end of the 64-bit address space"
            }
            usedOps.insert(e.op)
            openOp = (e.op, at)
        case .opEnd:
            guard let open = openOp else { return "op \(e.op) end without a matching 'op \(e.op) begin'" }
            if open.id != e.op {
                return "op \(e.op) end while op \(open.id) (begun at \(open.at)) is open (expected 'op \(open.id) end')"
            }
            openOp = nil
        default:
            break
        }
        return nil
    }

    /// Checked when the trace ends.
    func finish() -> String? {
        if let open = openOp {
            return "op \(open.id) begun at \(open.at) is never ended (expected 'op \(open.id) end' before the end of the trace)"
        }
        return nil
    }
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
