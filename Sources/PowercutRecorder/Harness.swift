import CPowercutRecorder
import Glibc
import PowercutTrace

/// Buffers for recording copies: a page-aligned pmem destination and a source filled
/// with a pattern, reused across calls. One call is recorded as an op with the caller's
/// drain after it, as a kernel caller (nvdimm_flush) or PMDK (pmem_drain) would issue.
public final class Harness {
    public let routine: Routine
    private let function: pc_fn3Shim
    public let pmem: UnsafeMutableRawPointer
    public let pmemLength: Int
    public let source: UnsafeMutableRawPointer
    public let sourceLength: Int

    /// How the copy is judged and drained.
    public struct Options: Sendable {
        public var contract: Contract = .flushcache
        /// Record an sfence after the op (the caller's drain).
        public var drain = true
        public var captureData = false
        /// Traps allowed per call (0: no limit).
        public var budget: UInt64 = 0
        public init() {}
    }

    /// Room for copies up to `maxLength` bytes at destination offsets below `maxOffset`.
    public init(routine: Routine, maxLength: Int, maxOffset: Int = 4096) throws(RecorderError) {
        self.routine = routine
        function = pc_fn3Shim(try routine.resolve())
        func pages(_ n: Int) -> Int { (n + 4095) / 4096 * 4096 }
        pmemLength = pages(maxOffset + maxLength + 64)
        sourceLength = pages(maxOffset + maxLength + 64)
        guard let p = mmap(nil, pmemLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED,
              let s = mmap(nil, sourceLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), s != MAP_FAILED
        else { throw RecorderError(.usage, "cannot map \(maxLength) bytes of buffers: \(String(cString: strerror(errno)))") }
        pmem = p
        source = s
        let bytes = s.assumingMemoryBound(to: UInt8.self)
        for i in 0..<sourceLength { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
    }

    deinit {
        munmap(pmem, pmemLength)
        munmap(source, sourceLength)
    }

    /// Records one call `routine(pmem + dstOffset, source + srcOffset, length)` and
    /// returns it as a trace (without the module map unless asked).
    public func record(dstOffset: Int, srcOffset: Int, length: Int, options: Options = Options(),
                       modules: Bool = false, meta: [(String, String)] = []) throws(RecorderError) -> Trace {
        precondition(dstOffset + length <= pmemLength && srcOffset + length <= sourceLength)
        return try Recorder.shared.exclusive { () throws(RecorderError) -> Trace in
            try recordExclusively(dstOffset: dstOffset, srcOffset: srcOffset, length: length, options: options,
                                  modules: modules, meta: meta)
        }
    }

    private func recordExclusively(dstOffset: Int, srcOffset: Int, length: Int, options: Options,
                                   modules: Bool, meta: [(String, String)]) throws(RecorderError) -> Trace {
        let r = Recorder.shared
        try r.reset()
        r.setBudget(options.budget)
        r.setCaptureData(options.captureData)
        // Dirty the destination before recording so the copy's own stores are what counts.
        memset(pmem, 0, pmemLength)
        try r.addPmem(base: UInt64(UInt(bitPattern: pmem)), length: UInt64(pmemLength), name: "pmem")
        let dst = pmem + dstOffset
        try r.beginOp(dst: UInt64(UInt(bitPattern: dst)), length: UInt64(length), name: routine.description,
                      contract: options.contract)
        try r.record(function.fn, dst: dst, src: source + srcOffset, count: length)
        try r.endOp()
        if options.drain { try r.drain() }
        var m = meta
        m.insert(("subject", "\(routine) dst-offset=\(dstOffset) src-offset=\(srcOffset) len=\(length) contract=\(options.contract)"), at: 0)
        return r.trace(meta: m, modules: modules)
    }
}

/// Keeps the C function pointer type out of the public API.
struct pc_fn3Shim {
    let fn: pc_fn3
    init(_ fn: pc_fn3) { self.fn = fn }
}
