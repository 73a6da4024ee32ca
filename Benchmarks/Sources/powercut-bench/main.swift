// powercut-bench: synthetic traces and replay throughput.
//
//   powercut-bench gen OUT [--events N] [--text]   write a copy-routine-like trace
//   powercut-bench replay FILE                      time reading + replaying it
//   powercut-bench decode FILE...                   per file, in one run: a decode-only
//                                                   pass (the limit), then the full replay
//                                                   `check` does; both rates and their ratio
//
// The synthetic mix imitates memcpy_flushcache calls over 1 GiB of pmem: an op per
// call, a cached head + write-back when the destination is unaligned, 8-byte
// non-temporal stores for the body, a cached tail + write-back, the op end and the
// caller's sfence. One call in 10,000 forgets its tail write-back, so the replay has
// real findings to report. Deterministic (fixed-seed PRNG).

import Foundation
import PowercutModel
import PowercutTrace

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// CPU time of this process: on a shared machine, what one idle core would take
/// (wall clock also counts the time other processes had the core).
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func maxRSSMiB() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_maxrss) / 1024
}

func generate(path: String, events target: UInt64, form: TraceForm) throws {
    let base: UInt64 = 0x7f00_0000_0000
    let span: UInt64 = 1 << 30
    var header = TraceHeader()
    header.records.append(.meta(key: "generator", value: "powercut-bench synthetic memcpy_flushcache mix"))
    header.records.append(.pmem(PmemRange(base: base, length: span, name: "bench")))
    header.records.append(.stack(id: 1, frames: [0x401000, 0x402000, 0x403000]))
    header.records.append(.stack(id: 2, frames: [0x401100, 0x402000, 0x403000]))
    header.records.append(.stack(id: 3, frames: [0x401200, 0x402000, 0x403000]))
    let out = try OutputFile(path: path)
    let sink: TraceSink = form == .binary ? BinaryTraceWriter(out) : TextTraceWriter(out)
    try sink.begin(header)
    var rng = SplitMix(state: 42)
    var batch = EventBatch()
    var seq: UInt64 = 0
    var op: UInt64 = 0
    let names = ["memcpy_flushcache"]
    func add(_ kind: EventKind, _ address: UInt64 = 0, _ size: UInt64 = 0, stack: UInt32 = 0) {
        var e = Event(kind: kind, seq: seq, address: address, size: size, stack: stack)
        if kind == .opBegin || kind == .opEnd {
            e.op = op
            if kind == .opBegin { e.name = 1 }
        }
        batch.events.append(e)
        seq += 1
    }
    while seq < target {
        op += 1
        // Mostly small copies, some up to 4 KiB.
        let r = rng.next()
        let len: UInt64 = r % 4 == 0 ? 1 + (r >> 8) % 4096 : 1 + (r >> 8) % 256
        let dst = base + (rng.next() % (span - 8192))
        let buggy = rng.next() % 10_000 == 0
        add(.opBegin, dst, len)
        var d = dst
        var n = len
        if d % 8 != 0 {
            let k = min(n, 8 - d % 8)
            add(.store, d, k, stack: 1)
            add(.clwb, d, stack: 1)
            d += k
            n -= k
        }
        while n >= 8 {
            add(.ntstore, d, 8, stack: 2)
            d += 8
            n -= 8
        }
        if n >= 4 {
            add(.ntstore, d, 4, stack: 2)
            d += 4
            n -= 4
        }
        if n > 0 {
            add(.store, d, n, stack: 3)
            if !buggy { add(.clwb, d, stack: 3) }
        }
        add(.opEnd)
        add(.sfence)
        if batch.events.count >= 65536 {
            try sink.write(batch, names: names, stacks: [:])
            batch.removeAll()
        }
    }
    try sink.write(batch, names: names, stacks: [:])
    try sink.end(eventCount: seq)
    print("wrote \(path): \(seq) events, \(op) ops, \(form.rawValue)")
}

func replay(path: String) throws {
    let start = now()
    let reader = try TraceReader(path: path)
    let replayer = Replayer(header: reader.header)
    reader.coalescesStoreRuns = replayer.acceptsStoreRuns  // as `powercut check` does
    var batch = EventBatch()
    var readTime = 0.0
    while true {
        let t0 = now()
        guard try reader.read(into: &batch, max: 8192) else { break }
        readTime += now() - t0
        replayer.apply(batch)
    }
    let result = replayer.finish(names: reader.names)
    let seconds = now() - start
    let rate = Double(result.events) / seconds / 1e6
    print("""
        \(path) (\(reader.form.rawValue)): \(result.events) events in \(String(format: "%.2f", seconds)) s = \(String(format: "%.1f", rate)) M events/s
          reading \(String(format: "%.2f", readTime)) s, model \(String(format: "%.2f", seconds - readTime)) s
          findings: \(result.errors) errors, \(result.warnings) warnings, \(result.notes) notes; peak live lines \(result.peakLiveLines); max RSS \(String(format: "%.0f", maxRSSMiB())) MiB
          findings digest \(digest(result.findings))
        """)
}

/// FNV-1a over every finding as printed by `dump`: two builds that agree on it agree
/// on every verdict, range and event number.
func digest(_ findings: [Finding]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for f in findings {
        var text = ""
        dump(f, to: &text)
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
    return String(h, radix: 16)
}

/// Reads every event and touches it, nothing more: what replay cannot beat.
func decodeOnly(path: String) throws -> (events: UInt64, seconds: Double, cpu: Double) {
    let start = now(), cpuStart = cpuNow()
    let reader = try TraceReader(path: path)
    var batch = EventBatch()
    var events: UInt64 = 0
    var sink: UInt64 = 0
    // The batch size the streaming replay uses, so the two passes compare like for like.
    while try reader.read(into: &batch, max: 512) {
        for e in batch.events where e.kind != .stackDefinition {
            events &+= 1
            sink &+= e.address
        }
    }
    if sink == 1 { print("") }  // keeps the loop from being optimised away
    return (events, now() - start, cpuNow() - cpuStart)
}

/// The replay `powercut check` runs (streaming, default options).
func fullReplay(path: String) throws -> (events: UInt64, seconds: Double, cpu: Double, errors: Int) {
    let start = now(), cpuStart = cpuNow()
    let (result, _) = try Replayer.replay(file: path)
    return (UInt64(result.events), now() - start, cpuNow() - cpuStart, result.errors)
}

func compare(paths: [String]) throws {
    print("file                                     form     events   decode-only M/s   replay M/s   replay/decode   (by CPU time: decode, replay M/s, ratio)")
    for path in paths {
        let form = try TraceReader(path: path).form.rawValue
        let d = try decodeOnly(path: path)
        let r = try fullReplay(path: path)
        precondition(d.events == r.events, "decode saw \(d.events) events, replay \(r.events)")
        let dr = Double(d.events) / d.seconds / 1e6, rr = Double(r.events) / r.seconds / 1e6
        let name = path.count < 40 ? path.padding(toLength: 40, withPad: " ", startingAt: 0) : path
        let kind = form.padding(toLength: 6, withPad: " ", startingAt: 0)
        let dc = Double(d.events) / d.cpu / 1e6, rc = Double(r.events) / r.cpu / 1e6
        print(name + " " + kind + String(format: " %9llu   %8.1f (%5.2f s)  %6.1f (%5.2f s)  %5.2f           %6.1f, %6.1f, %5.2f",
                                         d.events, dr, d.seconds, rr, r.seconds, rr / dr, dc, rc, rc / dc))
        print("  replay found \(r.errors) errors")
    }
    print(String(format: "max RSS %.0f MiB", maxRSSMiB()))
}

let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "gen":
        guard args.count >= 2 else { fatalError("usage: powercut-bench gen OUT [--events N] [--text]") }
        var events: UInt64 = 100_000_000
        if let i = args.firstIndex(of: "--events"), i + 1 < args.count, let n = UInt64(args[i + 1]) { events = n }
        try generate(path: args[1], events: events, form: args.contains("--text") ? .text : .binary)
    case "decode":
        guard args.count >= 2 else { fatalError("usage: powercut-bench decode FILE...") }
        try compare(paths: Array(args.dropFirst()))
    case "replay":
        guard args.count >= 2 else { fatalError("usage: powercut-bench replay FILE") }
        try replay(path: args[1])
    default:
        print("usage: powercut-bench gen OUT [--events N] [--text] | replay FILE | decode FILE...")
        exit(64)
    }
} catch {
    print("powercut-bench: \(error)")
    exit(65)
}
