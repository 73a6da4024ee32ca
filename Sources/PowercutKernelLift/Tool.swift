import Foundation

/// Runs a build tool (cc, patch, nm) and collects what it printed.
struct Tool {
    struct Result {
        var status: Int32
        var output: String
    }

    /// Runs `name` (found on PATH) with `arguments` in `directory`; standard output and
    /// error together, through a file so that a chatty tool never blocks.
    static func run(_ name: String, _ arguments: [String], in directory: String? = nil) throws(KernelLiftError) -> Result {
        guard let path = find(name) else {
            throw KernelLiftError(.environment, "\(name) is not installed (Tools/setup installs it; on Debian: apt-get install \(package(for: name)))")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["LC_ALL"] = "C"
        p.environment = env
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-kernel-lift-\(getpid())-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil),
              let handle = try? FileHandle(forWritingTo: log) else {
            throw KernelLiftError(.environment, "cannot create a temporary file in \(FileManager.default.temporaryDirectory.path)")
        }
        defer { try? FileManager.default.removeItem(at: log) }
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw KernelLiftError(.environment, "cannot run \(path): \(error.localizedDescription)")
        }
        p.waitUntilExit()
        try? handle.close()
        // A build tool's chatter is bounded in practice; read at most 1 MiB of it.
        let data = (try? FileHandle(forReadingFrom: log).readData(ofLength: 1 << 20)) ?? Data()
        return Result(status: p.terminationReason == .exit ? p.terminationStatus : 128 + p.terminationStatus,
                      output: String(decoding: data, as: UTF8.self))
    }

    static func find(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for d in dirs + ["/usr/bin", "/bin"] {
            let candidate = "\(d)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func package(for tool: String) -> String {
        switch tool {
        case "patch": "patch"
        case "nm": "binutils"
        default: "gcc"
        }
    }

    /// The first line of a tool's output that says what went wrong, else its first line.
    static func firstError(_ output: String) -> String {
        let lines = output.split(separator: "\n").map(String.init)
        let telling = ["error", "Error", "FAILED", "Reversed", "can't find", "No file to patch", "malformed", "Only garbage", "undefined"]
        let line = telling.lazy.compactMap { word in lines.first { $0.contains(word) } }.first ?? lines.first ?? "(no output)"
        return quoted(line, limit: 160)
    }
}
