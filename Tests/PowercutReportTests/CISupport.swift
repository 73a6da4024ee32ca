import Foundation
import Testing
import PowercutModel
import PowercutTrace
@testable import PowercutReport
@testable import PowercutTriage
import PowercutSymbolize
import PowercutOutput

/// A symbolizer stand-in: names frames by "module+0xOFFSET".
final class FakeLookup: Symbolizer {
    var places: [String: SourcePlace]

    init(places: [String: SourcePlace]) { self.places = places }

    func locations(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [SourcePlace] {
        FrameResolver().frames(of: address, index: 0, modules: modules)[0].moduleOffset.flatMap { places[$0] }.map { [$0] } ?? []
    }
}

/// A recorded-looking trace whose module, stacks and pmem sit at the given bases: the
/// example's shape (3 head bytes, 8 body bytes by ntstore, 2 tail bytes) with the tail's
/// write-back missing. `prefix` adds events before the op (they shift the numbering).
func tailBugTrace(module m: UInt64, pmem p: UInt64, opID: Int = 1, prefix: String = "") -> String {
    func h(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    return """
        module /usr/lib/libpmem.so.1 \(h(m)) 0x10000
        pmem \(h(p)) 0x10000 name=pool
        stack 1 \(h(m + 0x1a2c)) \(h(m + 0x3000))
        stack 2 \(h(m + 0x1b00)) \(h(m + 0x3000))
        \(prefix)
        op \(opID) begin dst=\(h(p + 0x3d)) len=13 name=memcpy_flushcache
        store \(h(p + 0x3d)) 3 stack=1
        clwb \(h(p + 0x3d))
        ntstore \(h(p + 0x40)) 8 stack=2
        store \(h(p + 0x48)) 2 stack=1
        op \(opID) end
        sfence
        """
}

/// The SARIF 2.1.0 schema named by POWERCUT_SARIF_SCHEMA (.ci/run sets it); nil when
/// the variable is unset or empty, and schema validation is then skipped, saying so.
let sarifSchemaPath: String? = {
    let path = ProcessInfo.processInfo.environment["POWERCUT_SARIF_SCHEMA"] ?? ""
    return path.isEmpty ? nil : path
}()

/// Validates a SARIF document against the schema with Python's jsonschema (Tools/setup
/// installs it); nil when valid or when no schema is named (a visible line says the
/// check was skipped), else what is wrong, including a missing schema or validator.
func sarifSchemaProblem(_ document: String) throws -> String? {
    guard let sarifSchemaPath else {
        FileHandle.standardError.write(Data("skipped: SARIF schema validation (set POWERCUT_SARIF_SCHEMA to the SARIF 2.1.0 schema to run it)\n".utf8))
        return nil
    }
    guard FileManager.default.fileExists(atPath: sarifSchemaPath) else {
        return "POWERCUT_SARIF_SCHEMA names \(sarifSchemaPath), which does not exist"
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-sarif-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let doc = dir.appendingPathComponent("doc.sarif").path
    try document.write(toFile: doc, atomically: true, encoding: .utf8)
    let script = """
        import json, sys
        try:
            import jsonschema
        except ImportError:
            print("python3-jsonschema is not installed (Tools/setup installs it)"); sys.exit(2)
        schema = json.load(open(sys.argv[1]))
        errors = list(jsonschema.Draft4Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
        for e in errors[:5]:
            print("/".join(str(p) for p in e.absolute_path), e.message[:300])
        sys.exit(1 if errors else 0)
        """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script, sarifSchemaPath, doc]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    if p.terminationStatus == 0 { return nil }
    return String(decoding: data, as: UTF8.self)
}
