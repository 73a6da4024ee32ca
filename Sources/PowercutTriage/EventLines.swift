import PowercutModel
import PowercutTrace

extension Finding {
    /// The stack that says where the finding comes from: that of the store that left
    /// the first byte range, or the deciding event's own for findings without ranges
    /// (flush notes, missing-drain). 0 when there is none.
    public var originStack: UInt32 { ranges.first.map(\.stack) ?? stack }

    /// The event to point at in the trace: the store that left the first byte range,
    /// else the deciding event (nil at the end of the trace).
    public var originEvent: UInt64? { ranges.first?.event ?? event }

    /// The events whose trace lines an annotation may show: the origin and the
    /// deciding event.
    var pointedAtEvents: [UInt64] { [originEvent, event].compactMap { $0 } }
}

/// Line numbers of events in a text trace, so annotations can point into the trace
/// when no source line is known. The text reader finds them (`TraceReader.eventLines`):
/// one reader decides what is an event and where it is.
public enum TraceLines {
    /// The 1-based line of each wanted event number (`#N`) in a text trace's bytes.
    public static func lines(of wanted: Set<UInt64>, in bytes: [UInt8]) -> [UInt64: Int] {
        guard !wanted.isEmpty, let reader = try? TraceReader(bytes: bytes) else { return [:] }
        return reader.eventLines(of: wanted)
    }

    /// The same for a trace file; empty when the file cannot be read (the lines are a
    /// convenience, never a reason to fail).
    public static func lines(of wanted: Set<UInt64>, inFile path: String) -> [UInt64: Int] {
        guard !wanted.isEmpty, let reader = try? TraceReader(path: path) else { return [:] }
        return reader.eventLines(of: wanted)
    }
}
