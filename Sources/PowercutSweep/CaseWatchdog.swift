import Foundation
import Glibc

/// The time limit of a sweep worker's case, kept by the worker itself: a thread that
/// wakes every few milliseconds and, once the case in progress runs past its limit,
/// writes that case's `timeout` result (prepared when the case began) and ends the
/// worker. The result is typed (`CaseResult.Status.timeout`), not told from a message;
/// the routine cannot delay it (it runs on another thread, which is not stepped), and
/// the pool's own kill stays as a backstop for a worker that cannot even do this.
public final class CaseWatchdog: @unchecked Sendable {
    public let limit: Double
    private let descriptor: Int32
    private let lock = NSLock()
    private var deadline = Double.infinity
    private var verdict: [UInt8] = []

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// `descriptor`: where results go.
    public init(limit: Double, descriptor: Int32) {
        self.limit = limit
        self.descriptor = descriptor
        let t = Thread { [self] in watch() }
        t.stackSize = 1 << 18
        t.start()
    }

    /// A case begins: `timeout` is the line to send if it does not end in time.
    public func arm(_ timeout: [UInt8]) {
        lock.lock()
        verdict = timeout
        deadline = Self.now() + limit
        lock.unlock()
    }

    public func disarm() {
        lock.lock()
        deadline = .infinity
        lock.unlock()
    }

    private func watch() {
        while true {
            usleep(limit < 1 ? 5_000 : 20_000)
            lock.lock()
            if Self.now() > deadline {
                let bytes = verdict
                var done = 0
                while done < bytes.count {
                    let n = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + done, $0.count - done) }
                    if n <= 0 { break }
                    done += n
                }
                _exit(0)
            }
            lock.unlock()
        }
    }
}
