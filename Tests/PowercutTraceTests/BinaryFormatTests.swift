import Glibc
import Testing
@testable import PowercutTrace

/// A temporary directory removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() {
        var template = Array("/tmp/powercut-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit {
        _ = path.withCString { p in system("rm -rf '\(String(cString: p))'") }
    }
    func file(_ name: String) -> String { path + "/" + name }
}

func contents(_ path: String) -> [UInt8] {
    guard let f = fopen(path, "rb") else { return [] }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

let canonical = """
    powercut-trace 1
    meta recorder powercut 0.1.0 on host
    line-size 64
    domain wpq
    module /usr/lib/x86_64-linux-gnu/libpmem.so.1 0x7f0000000000 0x40000 build-id=00ff
    pmem 0x10000 0x1000 name=pool
    pmem 0x20000 0x100 volatile
    init 0x10000 data=00ff
    init 0x10002 data=01
    stack 1 0x401a2c 0x4020f0
    op 1 begin dst=0x1003d len=13 src=0x9000 name=memcpy_flushcache contract=flushcache stack=1
    store 0x1003d 3 data=414243 stack=1
    clwb 0x1003d
    ntstore 0x10040 8
    store 0x10048 2
    clflushopt 0x10048
    op 1 end
    sfence
    stack 2 0x401000
    clflush 0x10000 stack=2
    mfence
    fence
    wpqflush
    op 2 begin dst=0x10000 len=0 contract=none
    op 2 end
    durable 0x10000 4
    mark checkpoint\\x20one\\x23two thread=2
    pmem 0x30000 0x1000 name=mapped volatile stack=2 thread=2
    op 3 begin dst=0x10000 len=8 thread=1
    op 4 begin dst=0x30000 len=8 thread=2
    store 0x30000 8 thread=2
    op 3 end thread=1
    op 4 end thread=2
    pmem-release 0x30000 0x1000
    pmem 0x30000 0x2000 name=remapped
    store 0x10000 1 thread=4294967295

    """

@Suite struct BinaryFormatTests {
    @Test func canonicalTextRoundTripsThroughBinaryByteForByte() throws {
        let dir = TemporaryDirectory()
        let text = dir.file("a.pct"), binary = dir.file("a.pctb"), back = dir.file("b.pct")
        try OutputFile.write(canonical, to: text)
        try convertTrace(from: text, to: binary, form: .binary)
        try convertTrace(from: binary, to: back, form: .text)
        #expect(contents(binary).starts(with: BinaryFormat.magic))
        #expect(String(decoding: contents(back), as: UTF8.self) == canonical)
        // And the binary form is smaller.
        #expect(contents(binary).count < canonical.utf8.count)
    }

    @Test func bothFormsReadTheSameEvents() throws {
        let dir = TemporaryDirectory()
        try OutputFile.write(canonical, to: dir.file("a.pct"))
        try convertTrace(from: dir.file("a.pct"), to: dir.file("a.pctb"), form: .binary)
        let a = try Trace(contentsOf: dir.file("a.pct")), b = try Trace(contentsOf: dir.file("a.pctb"))
        #expect(a == b)
        #expect(try TraceReader(path: dir.file("a.pctb")).form == .binary)
    }

    @Test func aTruncatedBinaryTraceIsRejected() throws {
        let dir = TemporaryDirectory()
        try OutputFile.write(canonical, to: dir.file("a.pct"))
        try convertTrace(from: dir.file("a.pct"), to: dir.file("a.pctb"), form: .binary)
        let bytes = contents(dir.file("a.pctb"))
        // Every proper prefix is an error, never a shorter trace.
        for n in stride(from: 9, to: bytes.count, by: 1) {
            #expect(throws: TraceError.self, "prefix of \(n) bytes was accepted") {
                _ = try Trace(reader: try TraceReader(bytes: Array(bytes[0..<n]), name: "cut.pctb"))
            }
        }
        let e = #expect(throws: TraceError.self) {
            _ = try Trace(reader: try TraceReader(bytes: Array(bytes.dropLast(2)), name: "cut.pctb"))
        }
        #expect(e?.description.contains("truncated") == true)
    }

    @Test func binaryReaderAppliesTheSameChecks() throws {
        // An op left open, written by a writer that does not validate.
        var t = Trace()
        t.header.records = [.pmem(PmemRange(base: 0, length: 0x100))]
        var begin = Event(kind: .opBegin, seq: 0, address: 0, size: 8)
        begin.op = 1
        t.events = [begin]
        let dir = TemporaryDirectory()
        try t.write(to: dir.file("open.pctb"), form: .binary)
        let e = #expect(throws: TraceError.self) { _ = try Trace(contentsOf: dir.file("open.pctb")) }
        #expect(e?.description.contains("op 1 begun at event #0 is never ended") == true)
    }

    @Test func binaryContentWithoutMagicIsNotTakenForText() {
        let e = #expect(throws: TraceError.self) { _ = try TraceReader(bytes: [0xff, 0x00, 0x01], name: "x.bin") }
        #expect(e?.description.contains("not a powercut trace") == true)
    }

    @Test func aDirectoryIsNotATrace() {
        let dir = TemporaryDirectory()
        let e = #expect(throws: TraceError.self) { _ = try TraceReader(path: dir.path) }
        #expect(e?.description.contains("is a directory") == true)
    }
}
