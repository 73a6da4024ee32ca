import PowercutModel
import PowercutTrace

/// The name the readers give an input in their messages.
let inputName = "fuzz-input"

/// Reads a whole trace from memory as the commands do (the header when the reader
/// opens, then the events in batches). nil when the reader rejects it; a rejection
/// must be one bounded, escaped line.
public func readTrace(_ bytes: [UInt8], batch: Int = 4096) -> Trace? {
    switch tryReadTrace(bytes, batch: batch) {
    case .success(let trace):
        return trace
    case .failure(let error):
        checkRejection(error.description, what: "reader")
        return nil
    }
}

/// The same, with the rejection as a value: for text powercut wrote itself, where a
/// rejection is the failure.
public func tryReadTrace(_ bytes: [UInt8], batch: Int = 4096) -> Result<Trace, TraceError> {
    do throws(TraceError) {
        let reader = try TraceReader(bytes: bytes, name: inputName)
        var b = EventBatch()
        var events: [Event] = []
        var data: [UInt8] = []
        while try reader.read(into: &b, max: batch) {
            for var e in b.events {
                if e.hasData {
                    let offset = data.count
                    data.append(contentsOf: b.data(of: e))
                    e.dataOffset = UInt32(offset)
                }
                events.append(e)
            }
        }
        return .success(Trace(header: reader.header, events: events, data: data, names: reader.names, stacks: reader.stacks))
    } catch {
        return .failure(error)
    }
}

/// Reads in batches of a size the input chooses (1-64 events), so a batch boundary
/// falls anywhere, and checks the trace is the one read in a single batch.
func readInBatches(_ input: FuzzInput) -> Trace? {
    guard let trace = readTrace(input.bytes, batch: 1 + Int(input.hash % 64)) else { return nil }
    if case .success(let whole) = tryReadTrace(input.bytes, batch: 1 << 20), whole != trace {
        checkFailed(.batches, "the reader gives another trace when it streams the events in batches of \(1 + input.hash % 64):\n  one batch: \(escapedPrefix(whole.text, max: 1000))\n  batches:   \(escapedPrefix(trace.text, max: 1000))")
    }
    return trace
}

/// Target `text`: the text reader on any bytes that are not a binary trace, and the
/// text writer on whatever it accepts; a trace must not depend on the batch size.
public enum TextReaderTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        if input.isBinary { return -1 }
        guard let trace = readInBatches(input) else { return 0 }
        _ = trace.text
        return 0
    }
}

/// Target `binary`: the binary reader on inputs that start with the binary magic (others
/// are left to the text target and kept out of the corpus). Whatever it accepts must be
/// a trace the text form holds too: its text form reads back, as the same text. (A
/// binary string holding a newline or `#`, say, would not survive `convert`.) Both
/// forms get the same verdict, and the trace does not depend on the batch size.
public enum BinaryReaderTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        guard input.isBinary else { return -1 }
        guard let trace = readInBatches(input) else { return 0 }
        checkRuns(input, trace)
        let text = trace.text
        switch tryReadTrace(Array(text.utf8)) {
        case .success(let again):
            RoundTripTarget.compare(text, again.text, "binary -> text -> text", check: .binaryText)
            let verdict = Replayer.replay(trace).findings, textVerdict = Replayer.replay(again).findings
            if verdict != textVerdict {
                checkFailed(.binaryText, "the binary trace and its text form have other verdicts (\(verdict.map(\.rule.rawValue)) and \(textVerdict.map(\.rule.rawValue))):\n\(escapedPrefix(text, max: 2000))")
            }
        case .failure(let error):
            checkFailed(.binaryText, "the binary reader accepted a trace whose text form the text reader rejects (\(error)):\n\(escapedPrefix(text, max: 4000))")
        }
        return 0
    }
}

/// A coalescing read of an accepted binary trace, runs expanded, is the trace read
/// store by store (data offsets aside: the batches check covers the data); and the
/// replay that takes runs whole (`Replayer.replay(reader:)`) finds what the replay of
/// each store finds.
func checkRuns(_ input: FuzzInput, _ trace: Trace) {
    func plain(_ events: [Event]) -> [Event] {
        events.map { e in
            var e = e
            e.dataOffset = 0
            return e
        }
    }
    do throws(TraceError) {
        let reader = try TraceReader(bytes: input.bytes, name: inputName)
        reader.coalescesStoreRuns = true
        var b = EventBatch()
        var events: [Event] = []
        while try reader.read(into: &b, max: 1 + Int(input.hash % 64)) {
            for e in b.events { e.forEachMember { events.append($0) } }
        }
        if plain(events) != plain(trace.events) {
            checkFailed(.runs, "the binary reader gives other events when it coalesces store runs:\n  each store: \(escapedPrefix(trace.text, max: 1000))")
        }
        let options = input.replayOptions
        let whole = try Replayer.replay(reader: try TraceReader(bytes: input.bytes, name: inputName), options: options).0
        let each = Replayer.replay(trace, options: options)
        if whole.findings != each.findings || whole.events != each.events {
            checkFailed(.runs, "the replay that takes store runs whole finds \(whole.findings.map(\.rule.rawValue)) in \(whole.events) events, store by store \(each.findings.map(\.rule.rawValue)) in \(each.events):\n\(escapedPrefix(trace.text, max: 2000))")
        }
    } catch {
        checkFailed(.runs, "the binary reader rejects, when it coalesces store runs, a trace it accepts store by store (\(error))")
    }
}
