import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Removes a temporary directory when the run is interrupted (SIGINT, SIGTERM, SIGHUP),
/// then dies of the same signal, so a sweep stopped by Ctrl-C or a CI timeout leaves no
/// lifted kernel behind and its parent still sees the signal. Normal exits remove the
/// directory themselves (`defer`); `cancel()` ends the watch.
final class SignalCleanup: @unchecked Sendable {
    private static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    private let path: String
    private var sources: [DispatchSourceSignal] = []

    init(removing path: String) {
        self.path = path
        for s in Self.signals {
            // Delivery goes to the dispatch source instead of killing the process.
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [path] in
                try? FileManager.default.removeItem(atPath: path)
                // Die of the signal: default action, unblocked in this thread (dispatch
                // blocks the signals it watches), sent to this thread.
                signal(s, SIG_DFL)
                var set = sigset_t()
                sigemptyset(&set)
                sigaddset(&set, s)
                pthread_sigmask(SIG_UNBLOCK, &set, nil)
                raise(s)
                _exit(128 + s)   // not reached
            }
            source.resume()
            sources.append(source)
        }
    }

    func cancel() {
        for s in sources { s.cancel() }
        sources = []
        for s in Self.signals { signal(s, SIG_DFL) }
    }
}
