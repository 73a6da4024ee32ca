import ArgumentParser
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

/// `powercut import pmemcheck LOG -o TRACE`: turns the store log of pmemcheck
/// (`valgrind --tool=pmemcheck --log-stores=yes`) into a trace. Docs/run.md says what
/// such a log cannot tell; the trace's meta says it too.
struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn another tool's log into a trace.",
        subcommands: [ImportPmemcheck.self]
    )
}

struct ImportPmemcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pmemcheck",
        abstract: "Turn a pmemcheck --log-stores=yes log into a trace.",
        discussion: """
            The log holds STORE (address, value, size), FLUSH (address, size), FENCE, REGISTER_FILE and the \
            markers of EMIT_LOG, separated by '|'; Valgrind's own lines (==PID==) are skipped. It cannot tell \
            non-temporal stores from cached ones (imported as cached stores), which flush instruction ran (each \
            FLUSH becomes a clwb of every line it covers, which needs a later fence), the stacks or the threads. \
            Exit status: 0 written, 64 usage, 65 a malformed log.
            """
    )

    @Argument(help: "The pmemcheck log (--log-file of valgrind --tool=pmemcheck --log-stores=yes).")
    var log: String

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The trace to write (.pct text, otherwise binary).", valueName: "file"))
    var output: String

    func run() throws {
        try reporting {
            try PmemcheckLog(path: log).convert(to: output, form: output.hasSuffix(".pct") ? .text : .binary)
        }
    }
}

/// A pmemcheck store log, read twice in a streaming way: once for the ranges (the
/// header), once for the events.
struct PmemcheckLog {
    let path: String

    static let cannotTell = "non-temporal stores (pmemcheck logs them as plain STOREs: imported as cached stores); "
        + "the flush instruction (each FLUSH is imported as clwb of every line it covers, needing a later fence; "
        + "PMDK's DO_FLUSH after non-temporal copies looks the same); stacks; threads; stores to memory pmemcheck "
        + "did not log (outside registered or loggable regions)"

    enum Item {
        case store(address: UInt64, value: UInt64, size: UInt64)
        case flush(address: UInt64, size: UInt64)
        case fence
        case registerFile(path: String, base: UInt64, size: UInt64)
        case marker(String)
    }

    /// Calls `body` with each item and its byte offset in the file.
    func forEachItem(_ body: (Item, UInt64) throws -> Void) throws {
        guard let f = fopen(path, "r") else {
            throw Failure.usage("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        var offset: UInt64 = 0
        defer { free(line) }
        while true {
            let n = getline(&line, &cap, f)
            if n < 0 { break }
            defer { offset += UInt64(n) }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(line!).assumingMemoryBound(to: UInt8.self), count: n)
            if bytes.starts(with: "==".utf8) || bytes.starts(with: "--".utf8) || bytes.starts(with: "**".utf8) { continue }
            var start = 0
            for i in 0...n {
                if i == n || bytes[i] == UInt8(ascii: "|") || bytes[i] == UInt8(ascii: "\n") {
                    if i > start {
                        let text = String(decoding: bytes[start..<i], as: UTF8.self)
                        if !text.allSatisfy({ $0 == " " || $0 == "\r" }) {
                            try body(try parse(text, at: offset + UInt64(start)), offset + UInt64(start))
                        }
                    }
                    start = i + 1
                }
            }
        }
    }

    private func parse(_ text: String, at offset: UInt64) throws -> Item {
        let fields = text.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        func bad(_ expected: String) -> Failure {
            Failure.badData("\(path):byte \(offset): bad \(fields[0]) item '\(quoted(text))' (expected \(expected))")
        }
        func number(_ s: String) -> UInt64? {
            s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
        }
        switch fields[0] {
        case "STORE":
            guard fields.count == 4, let a = number(fields[1]), let v = number(fields[2]), let s = number(fields[3]),
                  s >= 1, s <= 8, a &+ (s - 1) >= a
            else { throw bad("STORE;0xADDR;0xVALUE;0xSIZE with SIZE 1 to 8") }
            return .store(address: a, value: v, size: s)
        case "FLUSH":
            guard fields.count == 3, let a = number(fields[1]), let s = number(fields[2]), s >= 1, s <= 1 << 30,
                  a &+ (s - 1) >= a
            else { throw bad("FLUSH;0xADDR;0xSIZE") }
            return .flush(address: a, size: s)
        case "FENCE":
            return .fence
        case "REGISTER_FILE":
            guard fields.count >= 5, let b = number(fields[fields.count - 3]), let s = number(fields[fields.count - 2]), s > 0,
                  b &+ (s - 1) >= b
            else { throw bad("REGISTER_FILE;PATH;0xBASE;0xSIZE;0xOFFSET") }
            return .registerFile(path: fields[1..<(fields.count - 3)].joined(separator: ";"), base: b, size: s)
        default:
            return .marker(text)
        }
    }

    /// The ranges of the trace's header: every registered file, and the 4 KiB pages of
    /// stores outside them (pmemcheck logs only stores to memory it tracks), merged.
    private func ranges() throws -> [PmemRange] {
        var files: [(UInt64, UInt64, String)] = []
        var pages = Set<UInt64>()
        var stores: [(UInt64, UInt64)] = []
        try forEachItem { item, _ in
            switch item {
            case .registerFile(let p, let b, let s): files.append((b, b &+ s, p))
            case .store(let a, _, let s): stores.append((a, s))
            default: break
            }
            if stores.count > 1 << 16 { collect(&stores, files, &pages) }
        }
        collect(&stores, files, &pages)
        var spans: [(lo: UInt64, hi: UInt64, name: String?)] = files.map { ($0.0, $0.1, $0.2) }
        spans += pages.map { ($0, $0 &+ 4096, nil) }
        spans.sort { $0.lo < $1.lo }
        var merged: [(lo: UInt64, hi: UInt64, name: String?)] = []
        for s in spans {
            if let last = merged.last, s.lo <= last.hi {
                merged[merged.count - 1].hi = max(last.hi, s.hi)
                if merged[merged.count - 1].name == nil { merged[merged.count - 1].name = s.name }
            } else {
                merged.append(s)
            }
        }
        return merged.map { PmemRange(base: $0.lo, length: $0.hi &- $0.lo, name: $0.name.map(escapedName)) }
    }

    private func collect(_ stores: inout [(UInt64, UInt64)], _ files: [(UInt64, UInt64, String)], _ pages: inout Set<UInt64>) {
        for (a, s) in stores where !files.contains(where: { a >= $0.0 && a &+ s <= $0.1 }) {
            var p = a & ~4095
            while p <= (a &+ s &- 1) & ~4095 {
                pages.insert(p)
                p &+= 4096
            }
        }
        stores.removeAll(keepingCapacity: true)
    }

    func convert(to output: String, form: TraceForm) throws {
        var header = TraceHeader()
        header.records.append(.meta(key: "recorder", value: "pmemcheck-log imported by powercut \(PowercutVersion.string)"))
        header.records.append(.meta(key: "source", value: escapedName(path)))
        header.records.append(.meta(key: "cannot-tell", value: Self.cannotTell))
        for r in try ranges() { header.records.append(.pmem(r)) }
        let out = try OutputFile(path: output)
        let sink: TraceSink = form == .text ? TextTraceWriter(out) : BinaryTraceWriter(out)
        try sink.begin(header)
        var batch = EventBatch()
        var names: [String] = []
        var nameIndex: [String: UInt32] = [:]
        var count: UInt64 = 0
        func add(_ e: Event) throws {
            var e = e
            e.seq = count
            count += 1
            batch.events.append(e)
            if batch.events.count >= 4096 {
                try sink.write(batch, names: names, stacks: [:])
                batch.removeAll()
            }
        }
        try forEachItem { item, _ in
            switch item {
            case .store(let a, let v, let s):
                var e = Event(kind: .store, address: a, size: s)
                e.flags |= Event.Flags.hasData
                e.dataOffset = UInt32(batch.data.count)
                for i in 0..<Int(s) { batch.data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
                try add(e)
            case .flush(let a, let s):
                var line = a & ~63
                while line <= (a &+ s &- 1) & ~63 {
                    try add(Event(kind: .clwb, address: max(line, a)))
                    if line > UInt64.max - 64 { break }
                    line += 64
                }
            case .fence:
                try add(Event(kind: .sfence))
            case .registerFile:
                break // a pmem range of the header, named by the file
            case .marker(let text):
                try add(mark("pmemcheck " + text))
            }
        }
        func mark(_ text: String) -> Event {
            let index: UInt32
            if let i = nameIndex[text] {
                index = i
            } else {
                names.append(text)
                index = UInt32(names.count)
                nameIndex[text] = index
            }
            var e = Event(kind: .mark)
            e.name = index
            return e
        }
        if !batch.events.isEmpty { try sink.write(batch, names: names, stacks: [:]) }
        try sink.end(eventCount: count)
    }

    private func escapedName(_ s: String) -> String { s }
}

/// At most 80 bytes of `text` for a message, control bytes escaped.
func quoted(_ text: String) -> String {
    var out = ""
    for b in text.utf8.prefix(80) {
        if b < 0x20 || b == 0x7f { out += "\\x" + String(b, radix: 16).leftPadded(2) } else { out.unicodeScalars.append(Unicode.Scalar(b)) }
    }
    return text.utf8.count > 80 ? out + "…" : out
}

private extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
