import ArgumentParser
import PowercutRecorder
import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

/// The exit statuses powercut documents (sysexits where one fits).
enum ExitStatus {
    static let clean: Int32 = 0
    static let findings: Int32 = 1
    static let usage: Int32 = 64
    static let badData: Int32 = 65
    static let `internal`: Int32 = 70
}

/// An error a subcommand reports: a one-line message and its exit status.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var status: Int32

    static func usage(_ m: String) -> Failure { Failure(message: m, status: ExitStatus.usage) }
    static func badData(_ m: String) -> Failure { Failure(message: m, status: ExitStatus.badData) }
    static func `internal`(_ m: String) -> Failure { Failure(message: m, status: ExitStatus.internal) }

    var description: String { message }
}

/// The one place that turns any error into a message on stderr and an exit status.
func reporting<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as TraceError {
        printError(e.description)
        throw ExitCode(ExitStatus.badData)
    } catch let e as RecorderError {
        printError(e.description)
        switch e.kind {
        case .routine, .usage: throw ExitCode(ExitStatus.usage)
        case .recording: throw ExitCode(ExitStatus.badData)
        }
    } catch let e as Failure {
        printError(e.message)
        throw ExitCode(e.status)
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        printError("internal error: \(error) (please report this with the command line and trace)")
        throw ExitCode(ExitStatus.internal)
    }
}

func printError(_ message: String) {
    var line = "powercut: " + message
    if !line.hasSuffix("\n") { line += "\n" }
    writeAll(2, line)
}

/// Writes all of `text` to a file descriptor (standard output or error); false when a
/// write failed (`errno` says why).
@discardableResult
func writeAll(_ fd: Int32, _ text: String) -> Bool {
    var bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        done += n
    }
    return true
}

/// Writes to standard output; a write that fails (a full disk, a closed descriptor) is
/// an error, never a silently missing report: one line, exit 70.
func writeStdout(_ text: String) throws(Failure) {
    if !writeAll(1, text) { throw stdoutFailure(errno) }
}

func stdoutFailure(_ code: Int32) -> Failure {
    .internal("cannot write to standard output: \(String(cString: strerror(code)))")
}

/// Writes a report to standard output or crash-safely to a file.
func emit(_ text: String, to path: String?) throws {
    if let path, path != "-" {
        try OutputFile.write(text, to: path)
    } else {
        try writeStdout(text)
    }
}

/// A file-name option given as "" (`-o ""`): a usage error naming the option.
func requireName(_ value: String?, _ option: String) throws {
    if value == "" { throw ValidationError("\(option) needs a file name ('-' is standard output)") }
}
