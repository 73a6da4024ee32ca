/// Why a trace could not be read or written. Each description is one line that says
/// where, what is wrong and what was expected, e.g.
/// `bad.pct:12: unknown record 'stor' (expected store, ntstore, clwb, …)`.
public struct TraceError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The trace's content is malformed (exit 65).
        case malformed
        /// The file could not be opened, read or written (exit 66/73 in sysexits terms;
        /// powercut reports it as bad data, 65, since the trace is unusable).
        case io
    }

    public var kind: Kind
    public var file: String
    /// 1-based line in a text trace, byte offset in a binary trace, nil when not known.
    public var location: String?
    public var message: String

    public init(_ kind: Kind = .malformed, file: String, location: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.location = location
        self.message = message
    }

    public static func atLine(_ file: String, _ line: Int, _ message: String) -> TraceError {
        TraceError(file: file, location: String(line), message)
    }

    public var description: String {
        if let location { return "\(file):\(location): \(message)" }
        return "\(file): \(message)"
    }
}

/// The versions of the text and binary forms this build reads and writes.
public enum TraceVersion {
    public static let text: UInt64 = 1
    public static let binary: UInt64 = 1
}
