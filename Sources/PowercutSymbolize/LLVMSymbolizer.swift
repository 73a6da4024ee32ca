// llvm-symbolizer as a long-lived helper: one process per module, fed addresses in
// batches on its standard input, answering with function, file:line:column and the
// inline chain of each. A missing tool, a crash or a hang is never an error, only less
// information: the caller falls back to symbol names or module+offset.

#if canImport(Glibc)
import Glibc
#endif

/// Where llvm-symbolizer is: `POWERCUT_LLVM_SYMBOLIZER`, then next to `swift` on PATH
/// (the toolchain's own), then /opt/swift, then anywhere on PATH.
public enum LLVMSymbolizerTool {
    public static func find(environment: [String: String] = currentEnvironment()) -> String? {
        if let explicit = environment["POWERCUT_LLVM_SYMBOLIZER"] {
            // An empty value turns the tool off (tests, or a machine where it misbehaves).
            return explicit.isEmpty ? nil : (isExecutable(explicit) ? explicit : nil)
        }
        let path = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        var candidates: [String] = []
        for dir in path where isExecutable(dir + "/swift") {
            candidates.append(resolvedDirectory(of: dir + "/swift") + "/llvm-symbolizer")
            candidates.append(dir + "/llvm-symbolizer")
        }
        candidates.append("/opt/swift/usr/bin/llvm-symbolizer")
        for dir in path { candidates.append(dir + "/llvm-symbolizer") }
        return candidates.first(where: isExecutable)
    }

    static func isExecutable(_ path: String) -> Bool {
        var st = stat()
        return access(path, X_OK) == 0 && stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The directory of a path after resolving symlinks (swift on PATH is often a link
    /// into the toolchain).
    static func resolvedDirectory(of path: String) -> String {
        guard let real = realpath(path, nil) else { return String(path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")) }
        defer { free(real) }
        let s = String(cString: real)
        return String(s.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
    }

    public static func currentEnvironment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

/// One llvm-symbolizer process for one object file. Addresses are the file's own
/// (link-time) addresses.
final class LLVMSymbolizerProcess {
    private var pid: pid_t = -1
    private var toChild: Int32 = -1
    private var fromChild: Int32 = -1
    private var buffer: [UInt8] = []
    /// Set when the process failed; every later query answers nil at once.
    private(set) var failed = false
    /// How long one batch may take before the helper is given up on.
    var timeoutMilliseconds: Int32 = 20_000

    init?(tool: String, object: String) {
        // Sockets rather than pipes: writes use MSG_NOSIGNAL, so a helper that dies
        // cannot kill us with SIGPIPE, and no process-wide signal handling changes.
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &input) == 0 else { return nil }
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &output) == 0 else {
            close(input[0]); close(input[1])
            return nil
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[1], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)

        let arguments = [tool, "--obj=" + object, "--inlining", "--demangle", "--functions=linkage",
                         "--output-style=LLVM"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, tool, &actions, nil, argv, environ)
        close(input[1])
        close(output[1])
        guard rc == 0 else {
            close(input[0]); close(output[0])
            return nil
        }
        pid = child
        toChild = input[0]
        fromChild = output[0]
    }

    deinit { stop() }

    /// Ends the helper: closing its input lets it exit; one that lingers is killed.
    func stop() {
        if toChild >= 0 { close(toChild); toChild = -1 }
        if fromChild >= 0 { close(fromChild); fromChild = -1 }
        guard pid > 0 else { return }
        var status: Int32 = 0
        for _ in 0..<50 {   // up to half a second
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { pid = -1; return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = -1
    }

    private func fail() -> [[SourcePlace]]? {
        failed = true
        stop()
        return nil
    }

    /// The frames of each address, innermost first; nil when the helper failed.
    func symbolize(_ addresses: [UInt64]) -> [[SourcePlace]]? {
        guard !failed else { return nil }
        if addresses.isEmpty { return [] }
        var request: [UInt8] = []
        for a in addresses { request += Array("0x\(String(a, radix: 16))\n".utf8) }
        var written = 0
        var answers: [[SourcePlace]] = []
        var current: [String] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while answers.count < addresses.count {
            var fds = [pollfd(fd: fromChild, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: written < request.count ? toChild : -1, events: Int16(POLLOUT), revents: 0)]
            let ready = poll(&fds, 2, timeoutMilliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                return fail()
            }
            if ready == 0 { return fail() }   // hung
            if fds[1].revents & Int16(POLLOUT) != 0 {
                let n = request.withUnsafeBytes {
                    send(toChild, $0.baseAddress! + written, request.count - written, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
                if n > 0 { written += n } else if n < 0 && errno != EAGAIN && errno != EINTR { return fail() }
            } else if fds[1].revents & Int16(POLLERR | POLLHUP) != 0 {
                return fail()
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = chunk.withUnsafeMutableBytes { recv(fromChild, $0.baseAddress!, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return fail() }   // exited
                buffer += chunk[0..<n]
                // Complete lines: a response is pairs of lines (function, location),
                // closed by an empty line.
                var start = 0
                while let nl = buffer[start...].firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[start..<nl], as: UTF8.self)
                    start = nl + 1
                    if line.isEmpty {
                        answers.append(Self.parse(current))
                        current.removeAll()
                    } else {
                        current.append(line)
                    }
                }
                buffer.removeFirst(start)
            }
        }
        return answers
    }

    /// Lines of one response: function, then file:line:column, per frame.
    static func parse(_ lines: [String]) -> [SourcePlace] {
        var frames: [SourcePlace] = []
        var i = 0
        while i + 1 < lines.count {
            frames.append(frame(function: lines[i], location: lines[i + 1]))
            i += 2
        }
        if frames.allSatisfy({ $0.function == nil && $0.file == nil }) { return [] }
        return frames
    }

    static func frame(function: String, location: String) -> SourcePlace {
        var loc = Substring(location)
        if let d = loc.firstRange(of: " (discriminator ") { loc = loc[..<d.lowerBound] }
        // FILE:LINE:COLUMN, or FILE:LINE; the file itself may hold colons.
        var parts = loc.split(separator: ":", omittingEmptySubsequences: false)
        var numbers: [Int] = []
        while numbers.count < 2, parts.count > 1, let n = Int(parts.last!) {
            numbers.insert(n, at: 0)
            parts.removeLast()
        }
        let file = parts.joined(separator: ":")
        let line = numbers.first ?? 0
        let column = numbers.count > 1 ? numbers[1] : 0
        return SourcePlace(function: function == "??" ? nil : function,
                           file: file == "??" || file.isEmpty ? nil : file,
                           line: line, column: column)
    }
}
