import PowercutTrace

/// `powercut info`: what a trace holds, without replaying it — its form and version,
/// domain, line size, pmem ranges, modules, meta, event counts by kind, ops and stacks.
/// Streams: memory stays bounded by the op names and stacks, not the events.
public struct TraceInfo {
    public var file: String
    public var form: TraceForm
    public var header: TraceHeader
    public var events: UInt64 = 0
    public var byKind: [EventKind: UInt64] = [:]
    /// Bytes stored by cached and by non-temporal stores.
    public var cachedBytes: UInt64 = 0
    public var nonTemporalBytes: UInt64 = 0
    public var ops: UInt64 = 0
    /// Ops by name (nil: unnamed) and contract, in order of first appearance.
    public var opKinds: [(name: String?, contract: Contract, count: UInt64)] = []
    public var stacks = 0
    /// Events that carry a stack.
    public var eventsWithStacks: UInt64 = 0

    /// Reads the whole trace.
    public init(reader: TraceReader) throws(TraceError) {
        file = reader.file
        form = reader.form
        header = reader.header
        var batch = EventBatch()
        var kindIndex: [String: Int] = [:]
        while try reader.read(into: &batch) {
            for e in batch.events where e.kind != .stackDefinition {
                events += 1
                byKind[e.kind, default: 0] += 1
                if e.stack != 0 { eventsWithStacks += 1 }
                switch e.kind {
                case .store: cachedBytes &+= e.size
                case .ntstore: nonTemporalBytes &+= e.size
                case .opBegin:
                    ops += 1
                    let name = e.name == 0 ? nil : reader.names[Int(e.name) - 1]
                    let key = "\(name ?? "")\u{0}\(e.contract)"
                    if let i = kindIndex[key] {
                        opKinds[i].count += 1
                    } else {
                        kindIndex[key] = opKinds.count
                        opKinds.append((name, e.contract, 1))
                    }
                default: break
                }
            }
        }
        stacks = reader.stacks.count
    }

    public func render() -> String {
        var rows: [(String, String)] = []
        rows.append(("file", file))
        rows.append(("format", "\(form), version \(form == .text ? TraceVersion.text : TraceVersion.binary)"))
        rows.append(("domain", "\(header.domain)" + (header.declaredDomain == nil ? " (default)" : "")))
        let declaredLine = header.records.contains { if case .lineSize = $0 { true } else { false } }
        rows.append(("line size", "\(header.lineSize) bytes" + (declaredLine ? "" : " (default)")))
        let pmem = header.pmem
        if pmem.isEmpty { rows.append(("pmem", "none declared")) }
        for (i, r) in pmem.enumerated() {
            var s = "0x\(hex(r.base))-0x\(hex(r.end &- 1)) (\(size(r.length)))"
            if let n = r.name { s += " name=\(n)" }
            if r.isVolatile { s += " volatile" }
            rows.append((i == 0 ? "pmem" : "", s))
        }
        let modules = header.modules
        if modules.isEmpty { rows.append(("modules", "none")) }
        for (i, m) in modules.enumerated() {
            var s = "\(m.path) 0x\(hex(m.base))-0x\(hex(m.base &+ m.size &- 1))"
            s += m.buildID.map { " build-id=\($0)" } ?? " (no build-id)"
            rows.append((i == 0 ? "modules" : "", s))
        }
        let meta = header.meta
        if meta.isEmpty { rows.append(("meta", "none")) }
        for (i, kv) in meta.enumerated() { rows.append((i == 0 ? "meta" : "", kv.value.isEmpty ? kv.key : "\(kv.key): \(kv.value)")) }
        var counts = EventKind.allCases.compactMap { k -> String? in
            guard k != .stackDefinition, let n = byKind[k], n > 0 else { return nil }
            let name = k == .opBegin ? "op begin" : (k == .opEnd ? "op end" : k.keyword)
            return "\(n) \(name)"
        }.joined(separator: ", ")
        if counts.isEmpty { counts = "none" }
        rows.append(("events", "\(events)" + (events > 0 ? ": \(counts)" : "")))
        if cachedBytes + nonTemporalBytes > 0 {
            rows.append(("bytes stored", "\(cachedBytes) cached, \(nonTemporalBytes) non-temporal"))
        }
        var opText = "\(ops)"
        if !opKinds.isEmpty {
            opText += ": " + opKinds.prefix(12).map { k in
                "\(k.name ?? "(unnamed)") ×\(k.count) (\(k.contract))"
            }.joined(separator: ", ")
            if opKinds.count > 12 { opText += ", … \(opKinds.count - 12) more names" }
        }
        rows.append(("ops", opText))
        rows.append(("stacks", "\(stacks)" + (events > 0 ? " (on \(eventsWithStacks) of \(events) events)" : "")))
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { k, v in k + String(repeating: " ", count: width - k.count + 2) + v }.joined(separator: "\n") + "\n"
    }

    func size(_ n: UInt64) -> String {
        if n >= 1 << 30 && n % (1 << 30) == 0 { return "\(n >> 30) GiB" }
        if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
        if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
        return "\(n) byte\(n == 1 ? "" : "s")"
    }
}
