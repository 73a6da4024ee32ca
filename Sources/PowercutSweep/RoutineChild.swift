import Glibc
import PowercutRecorder

/// The child's side of an isolated routine run: status lines on descriptor 4.
///
///     loaded                      the library is loaded and the symbol resolved
///     error KIND CAUSE MESSAGE    the recorder refused (KIND: routine, usage, recording)
///     done EVENTS HANDLERS        the result is complete on descriptor 3
///
/// A child that ends without `done` or `error` crashed, exited or hung: the parent
/// words that from how it ended and the last line it saw.
public enum RoutineChild {
    public static func send(_ line: String) {
        let bytes = Array((line.replacingControlCharacters + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(IsolatedRun.statusDescriptor, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            done += n
        }
    }

    public static func send(_ error: RecorderError) {
        let kind = switch error.kind {
        case .routine: "routine"
        case .usage: "usage"
        case .recording: "recording"
        }
        send("error \(kind) \(error.cause.rawValue) \(error.description)")
    }
}

/// Why a routine run in a child gave no result, typed, with its one-line wording.
public struct RoutineRunFailure: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// Killed by a signal (SIGSEGV, SIGABRT, SIGILL, …).
        case crashed(signal: Int32)
        /// Ended the process with this status (exit, _exit, a constructor's exit).
        case exited(status: Int32)
        /// Ran past the time limit and was killed.
        case timedOut(seconds: Double)
        /// The recorder stopped it (budget, an instruction it cannot place, …).
        case recorder(RecorderError.Kind, RecorderError.Cause)
    }

    public var reason: Reason
    /// Whether it happened while loading the library (its constructors), before the routine ran.
    public var whileLoading: Bool
    public var description: String
}

extension IsolatedRun {
    /// The events and signal handlers of a complete run, or nil.
    public var done: (events: Int, handlers: Int)? {
        guard let last = status.last, last.hasPrefix("done") else { return nil }
        let f = last.split(separator: " ").dropFirst().compactMap { Int($0) }
        return (f.first ?? 0, f.count > 1 ? f[1] : 0)
    }

    /// Nil when the child finished its work; otherwise why not, worded for `routine`.
    public func failure(_ routine: Routine) -> RoutineRunFailure? {
        if done != nil, end == .exited(0) { return nil }
        if let e = status.last(where: { $0.hasPrefix("error ") }) {
            let f = e.split(separator: " ", maxSplits: 3).map(String.init)
            let kind: RecorderError.Kind = f.count > 1 && f[1] == "routine" ? .routine : f.count > 1 && f[1] == "usage" ? .usage : .recording
            let cause = f.count > 2 ? RecorderError.Cause(rawValue: f[2]) ?? .other : .other
            return RoutineRunFailure(reason: .recorder(kind, cause), whileLoading: !status.contains("loaded"),
                                     description: f.count > 3 ? f[3] : "the recorder failed")
        }
        let loading = !status.contains("loaded")
        let what: String
        switch routine {
        case .library(let path, let symbol):
            what = loading ? "loading \(path) (its constructors, before \(symbol) ran)" : "the routine \(symbol)"
        case .subject(let name):
            what = loading ? "starting the recorder for \(name)" : "the routine \(name)"
        }
        switch end {
        case .signalled(let s):
            return RoutineRunFailure(reason: .crashed(signal: s), whileLoading: loading,
                                     description: "\(what) crashed: killed by \(signalDescription(s))")
        case .exited(let code):
            return RoutineRunFailure(reason: .exited(status: code), whileLoading: loading,
                                     description: "\(what) ended the process with exit status \(code)")
        case .timedOut(let t):
            return RoutineRunFailure(reason: .timedOut(seconds: t), whileLoading: loading,
                                     description: "\(what) ran longer than the time limit of \(formatSeconds(t)) s (--timeout) and was killed")
        }
    }
}

func formatSeconds(_ t: Double) -> String {
    t == t.rounded() ? String(Int(t)) : String(t)
}

extension String {
    /// One line: control characters as \xHH.
    var replacingControlCharacters: String {
        var out = ""
        for u in unicodeScalars {
            if u.value < 0x20 || u.value == 0x7f {
                out += "\\x" + String(u.value, radix: 16).leftPadded(2)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
