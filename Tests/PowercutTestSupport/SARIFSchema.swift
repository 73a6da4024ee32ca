import Foundation

/// The SARIF 2.1.0 schema named by POWERCUT_SARIF_SCHEMA (.ci/run sets it); nil when
/// the variable is unset or empty, and schema validation is then skipped, saying so.
public let sarifSchemaPath: String? = {
    let path = ProcessInfo.processInfo.environment["POWERCUT_SARIF_SCHEMA"] ?? ""
    return path.isEmpty ? nil : path
}()

/// Validates a SARIF document against the schema with Python's jsonschema (Tools/setup
/// installs it); nil when valid or when no schema is named (a visible line says the
/// check was skipped), else what is wrong, including a missing schema or validator.
public func sarifSchemaProblem(_ document: String) throws -> String? {
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
    return p.terminationStatus == 0 ? nil : String(decoding: data, as: UTF8.self)
}
