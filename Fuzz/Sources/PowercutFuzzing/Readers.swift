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

/// Target `text`: the text reader on any bytes that are not a binary trace, and the
/// text writer on whatever it accepts. Events are read in batches of a size the input
/// chooses, so a batch boundary falls anywhere.
public enum TextReaderTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        if input.isBinary { return -1 }
        guard let trace = readTrace(input.bytes, batch: 1 + Int(input.hash % 64)) else { return 0 }
        _ = trace.text
        return 0
    }
}

/// Target `binary`: the binary reader on inputs that start with the binary magic (others
/// are left to the text target and kept out of the corpus). Whatever it accepts must be
/// a trace the text form holds too: its text form reads back, as the same text. (A
/// binary string holding a newline or `#`, say, would not survive `convert`.)
public enum BinaryReaderTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        guard input.isBinary else { return -1 }
        guard let trace = readTrace(input.bytes, batch: 1 + Int(input.hash % 64)) else { return 0 }
        let text = trace.text
        switch tryReadTrace(Array(text.utf8)) {
        case .success(let again):
            RoundTripTarget.compare(text, again.text, "binary -> text -> text", check: .binaryText)
        case .failure(let error):
            checkFailed(.binaryText, "the binary reader accepted a trace whose text form the text reader rejects (\(error)):\n\(escapedPrefix(text, max: 4000))")
        }
        return 0
    }
}
