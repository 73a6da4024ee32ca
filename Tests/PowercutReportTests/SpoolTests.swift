import Testing
import PowercutOutput
@testable import PowercutReport

/// Spools keep output aside in bounded memory: what comes back is what went in, in
/// order, whether it stayed in memory or went to the temporary file.
@Suite struct SpoolTests {
    @Test func bytesComeBackInOrderAcrossTheMemoryLimit() throws {
        let spool = Spool(memoryLimit: 10)
        var expected = ""
        for k in 0..<200 {
            let s = "line \(k)\n"
            try spool.write(s)
            expected += s
        }
        #expect(spool.count == expected.utf8.count)
        #expect(try spool.text() == expected)
        var chunks = 0
        try spool.forEachChunk { _ in chunks += 1 }
        #expect(chunks >= 1)
    }

    @Test func patchesLandInTheFileAndInMemory() throws {
        let spool = Spool(memoryLimit: 16)
        try spool.write(String(repeating: "a", count: 20))  // past the limit: to the file
        try spool.write(String(repeating: "b", count: 10))  // under it: stays in memory
        try Array("XYZ".utf8).withUnsafeBytes { try spool.patch(at: 18, $0) }  // across the file's end
        try Array("Q".utf8).withUnsafeBytes { try spool.patch(at: 28, $0) }    // in memory
        let text = try spool.text()
        #expect(text == String(repeating: "a", count: 18) + "XYZ" + String(repeating: "b", count: 7) + "Qb")
        var back = [UInt8](repeating: 0, count: 5)
        try back.withUnsafeMutableBytes { try spool.read(at: 17, into: $0) }
        #expect(String(decoding: back, as: UTF8.self) == "aXYZb")
    }

    @Test func anEmptySpoolHandsOutNothing() throws {
        let spool = Spool()
        var calls = 0
        try spool.forEachChunk { _ in calls += 1 }
        #expect(calls == 0 && spool.count == 0)
    }
}
