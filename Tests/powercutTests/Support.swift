import Foundation
import Testing

/// The result of running the built powercut binary.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The package root (where Traces/ lives).
let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url
}()

/// The powercut binary built next to the test bundle.
let powercutBinary: String = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    if dir.lastPathComponent.hasSuffix(".xctest") { dir.deleteLastPathComponent() }
    return dir.appendingPathComponent("powercut").path
}()

/// Runs powercut with arguments (and optional standard input) in `directory`.
func powercut(_ arguments: [String], stdin: String? = nil, in directory: URL = packageRoot,
              environment: [String: String] = [:]) throws -> Run {
    try runProgram(powercutBinary, arguments, stdin: stdin, in: directory, environment: environment)
}

/// Runs a program with arguments (and optional standard input) in `directory`.
func runProgram(_ path: String, _ arguments: [String], stdin: String? = nil, in directory: URL = packageRoot,
                environment: [String: String] = [:]) throws -> Run {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    p.currentDirectoryURL = directory
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    // Output goes to files, so a large report can never block the child on a pipe.
    let scratch = Scratch()
    FileManager.default.createFile(atPath: scratch.path("out"), contents: nil)
    FileManager.default.createFile(atPath: scratch.path("err"), contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path("out")))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch.path("err")))
    let inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try inp.fileHandleForWriting.close()
    p.waitUntilExit()
    try out.close()
    try err.close()
    return Run(status: p.terminationStatus,
               stdout: (try? String(contentsOfFile: scratch.path("out"), encoding: .utf8)) ?? "",
               stderr: (try? String(contentsOfFile: scratch.path("err"), encoding: .utf8)) ?? "")
}

/// A temporary directory removed at deinit.
final class Scratch {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-e2e-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}
