import CPowercutEncoder
import PowercutTrace
import Testing

/// The C trace encoder (both recorders write through it) against the Swift reader: what
/// the encoder writes, in either form, reads back as exactly the records written.
@Suite struct EncoderTests {
    /// Collects what the encoder flushes.
    final class Sink {
        var bytes: [UInt8] = []
    }

    /// Runs `body` on a fresh writer of `form` with a small buffer (so records straddle
    /// flushes) and returns the bytes written.
    static func encode(_ form: Int32, bufferSize: Int = 64, _ body: (UnsafeMutablePointer<pce_writer>) -> Void) -> [UInt8] {
        let sink = Sink()
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: bufferSize)
        defer { buffer.deallocate() }
        var w = pce_writer()
        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        pce_init(&w, form, buffer, bufferSize, { ctx, p, n in
            let sink = Unmanaged<Sink>.fromOpaque(ctx!).takeUnretainedValue()
            sink.bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            return 0
        }, ctx)
        #expect(pce_begin(&w) == 0)
        body(&w)
        #expect(pce_finish(&w) == 0, "\(String(cString: pce_error(&w)))")
        return withExtendedLifetime(sink) { sink.bytes }
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Every record kind the reader of this build knows, with stacks, data and op fields.
    static func classicTrace(_ w: UnsafeMutablePointer<pce_writer>) {
        let meta = bytes("subject copy one")
        pce_line_size(w, 128)
        pce_domain(w, Int32(PCE_EADR))
        pce_pmem(w, 0x10000, 0x1000, nil, 0, 0, 0)
        pce_pmem(w, 0x20000, 0x100, nil, 0, 1, 0)
        let path = bytes("/usr/lib/libx.so")
        pce_module(w, path, path.count, 0x7f0000000000, 0x2000, "0123abcd")
        pce_module(w, path, path.count, 0x7f0000100000, 0x1000, nil)
        pce_meta(w, bytes("recorder"), 8, meta, meta.count)
        let frames: [UInt64] = [0x401000, 0x400500, 0x7f0000000010]
        pce_stack(w, 1, frames, frames.count)
        let data: [UInt8] = [0, 1, 0xff, 0x80, 0x7f]
        pce_store(w, Int32(PCE_STORE), 0x1003d, 5, data, 1)
        pce_store(w, Int32(PCE_NTSTORE), 0x10040, 8, nil, 0)
        pce_store(w, Int32(PCE_NTSTORE), 0x10048, 8, nil, 1)
        pce_writeback(w, Int32(PCE_CLWB), 0x1003d, 1)
        pce_writeback(w, Int32(PCE_CLFLUSHOPT), 0x10000, 0)
        pce_writeback(w, Int32(PCE_CLFLUSH), 0xfff0, 0)
        pce_fence(w, Int32(PCE_SFENCE), 0)
        pce_fence(w, Int32(PCE_MFENCE), 1)
        pce_fence(w, Int32(PCE_FENCE), 0)
        pce_fence(w, Int32(PCE_WPQFLUSH), 0)
        pce_stack(w, 2, [0x401008], 1)
        let name = bytes("memcpy_flushcache")
        pce_op_begin(w, 7, 0x10000, 64, 1, 0x5000, name, name.count, Int32(PCE_PERSIST) | Int32(PCE_CONTRACT_EXPLICIT), 2)
        pce_store(w, Int32(PCE_STORE), 0x10000, 64, nil, 2)
        pce_op_end(w, 7, 0)
        pce_op_begin(w, 8, 0x10100, 0, 0, 0, nil, 0, Int32(PCE_FLUSHCACHE), 0)
        pce_op_end(w, 8, 0)
        pce_durable(w, 0x10000, 64, 0)
        pce_store(w, Int32(PCE_STORE), UInt64.max - 3, 4, nil, 0) // the very top of memory
    }

    @Test func everyRecordKindReadsBackFromBothForms() throws {
        let binary = Self.encode(Int32(PCE_BINARY), Self.classicTrace)
        let text = Self.encode(Int32(PCE_TEXT), Self.classicTrace)
        let fromBinary = try Trace(reader: TraceReader(bytes: binary))
        let fromText = try Trace(reader: TraceReader(bytes: text))
        #expect(fromBinary == fromText)

        let h = fromBinary.header
        #expect(h.lineSize == 128)
        #expect(h.domain == .eadr)
        #expect(h.pmem == [PmemRange(base: 0x10000, length: 0x1000), PmemRange(base: 0x20000, length: 0x100, isVolatile: true)])
        #expect(h.modules == [Module(path: "/usr/lib/libx.so", base: 0x7f0000000000, size: 0x2000, buildID: "0123abcd"),
                              Module(path: "/usr/lib/libx.so", base: 0x7f0000100000, size: 0x1000)])
        #expect(h.meta.map { "\($0.key)=\($0.value)" } == ["recorder=subject copy one"])
        #expect(fromBinary.stacks[1] == [0x401000, 0x400500, 0x7f0000000010])
        #expect(fromBinary.stacks[2] == [0x401008])

        let events = fromBinary.events.filter { $0.kind != .stackDefinition }
        #expect(events.map(\.kind) == [.store, .ntstore, .ntstore, .clwb, .clflushopt, .clflush, .sfence, .mfence, .fence,
                                       .wpqflush, .opBegin, .store, .opEnd, .opBegin, .opEnd, .durable, .store])
        #expect(events.map(\.seq) == (0..<17).map { UInt64($0) })
        #expect(events.map(\.address) == [0x1003d, 0x10040, 0x10048, 0x1003d, 0x10000, 0xfff0, 0, 0, 0, 0, 0x10000, 0x10000,
                                          0, 0x10100, 0, 0x10000, UInt64.max - 3])
        #expect(events.map(\.stack) == [1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 2, 2, 0, 0, 0, 0, 0])
        #expect(fromBinary.batch.data(of: events[0]) == [0, 1, 0xff, 0x80, 0x7f])
        #expect(!events[1].hasData)
        let op = events[10]
        #expect(op.op == 7 && op.size == 64 && op.contract == .persist && op.hasExplicitContract)
        #expect(op.hasSource && op.source == 0x5000)
        #expect(fromBinary.names[Int(op.name) - 1] == "memcpy_flushcache")
        let bare = events[13]
        #expect(bare.op == 8 && bare.size == 0 && bare.contract == .flushcache && !bare.hasExplicitContract && bare.name == 0)
        #expect(events[15].size == 64)
        // The text the encoder writes is the canonical text the Swift writer writes.
        #expect(String(decoding: text, as: UTF8.self) == fromText.text)
    }

    @Test func largeStoreStraddlesManyFlushes() throws {
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for form in [Int32(PCE_BINARY), Int32(PCE_TEXT)] {
            let out = Self.encode(form, bufferSize: 100) { w in
                pce_pmem(w, 0x100000, 1 << 21, nil, 0, 0, 0)
                pce_store(w, Int32(PCE_NTSTORE), 0x100000, UInt64(data.count), data, 0)
            }
            let t = try Trace(reader: TraceReader(bytes: out))
            #expect(t.events.count == 1 && t.batch.data(of: t.events[0]) == data[...])
        }
    }

    @Test func brokenRecordsFailTheWriter() {
        for form in [Int32(PCE_BINARY), Int32(PCE_TEXT)] {
            _ = Self.encode(form) { w in
                #expect(pce_store(w, Int32(PCE_STORE), 0x10, 0, nil, 0) == -1)
                #expect(String(cString: pce_error(w)).contains("0 or more than 1 MiB"))
                #expect(pce_fence(w, Int32(PCE_SFENCE), 0) == -1) // stays failed
                w.pointee.failed = 0 // so encode() can finish
            }
            _ = Self.encode(form) { w in
                pce_fence(w, Int32(PCE_SFENCE), 0)
                #expect(pce_line_size(w, 64) == -1) // header after an event
                w.pointee.failed = 0
            }
            _ = Self.encode(form) { w in
                #expect(pce_meta(w, Self.bytes("a b"), 3, nil, 0) == -1)
                w.pointee.failed = 0
            }
        }
    }

    /// The bytes a free-text field may hold: every one must come back as written.
    static let edgeName: [UInt8] = Array("a b\tc#d\\e".utf8) + [0x0a, 0x0d, 0x00, 0x1b, 0x7f, 0x3d] + Array("é€😀".utf8)

    /// True when this build's reader reads the records of Docs/trace-format.md that came
    /// with the whole-program recorder (mark, pmem between events, thread=, init) and
    /// decodes every \xHH escape; they are written by the trace module.
    static let readerHasNewRecords: Bool = {
        let probe = "powercut-trace 1\nmodule /a\\x23b 0x1000 0x1000\npmem 0x1000 0x10\nmark x thread=1\n"
        return (try? Trace(reader: TraceReader(text: probe))).map { $0.header.modules.first?.path == "/a#b" } ?? false
    }()

    static func newRecords(_ w: UnsafeMutablePointer<pce_writer>) {
        let name = edgeName
        let meta = Array("two  spaces ".utf8) + [0x09] + Array(" end".utf8)
        pce_meta(w, Self.bytes("note"), 4, meta, meta.count)
        pce_module(w, name, name.count, 0x400000, 0x1000, nil)
        pce_pmem(w, 0x10000, 0x100, name, name.count, 0, 0)
        pce_initial(w, 0x10000, [1, 2, 3, 4], 4)
        pce_store(w, Int32(PCE_STORE), 0x10000, 8, nil, 0)
        pce_thread(w, 3)
        pce_mark(w, name, name.count, 0)
        pce_pmem(w, 0x30000, 0x40, nil, 0, 1, 0)
        pce_store(w, Int32(PCE_NTSTORE), 0x30000, 8, nil, 0)
        pce_thread(w, 0)
        pce_fence(w, Int32(PCE_SFENCE), 0)
        pce_thread(w, 3)
        pce_pmem_release(w, 0x30000, 0x40, 0)
        pce_op_begin(w, 1, 0x10000, 8, 0, 0, name, name.count, Int32(PCE_NONE) | Int32(PCE_CONTRACT_EXPLICIT), 0)
        pce_op_end(w, 1, 0)
    }

    @Test(.enabled(if: readerHasNewRecords, "the reader of this build does not read mark/thread=/init or \\xHH escapes yet"))
    func newRecordsAndEscapedBytesReadBack() throws {
        let binary = Self.encode(Int32(PCE_BINARY), Self.newRecords)
        let text = Self.encode(Int32(PCE_TEXT), Self.newRecords)
        let fromBinary = try Trace(reader: TraceReader(bytes: binary))
        let fromText = try Trace(reader: TraceReader(bytes: text))
        #expect(fromBinary == fromText)
        // Strings are read in the trace module's display form: printable UTF-8 as
        // itself, a backslash and every other byte as \xHH (one-to-one with the bytes).
        let expectedName = "a b\\x09c#d\\x5ce\\x0a\\x0d\\x00\\x1b\\x7f=é€😀"
        #expect(fromText.header.modules.first?.path == expectedName)
        #expect(fromText.header.pmem.first?.name == expectedName)
        #expect(fromText.header.meta.first?.value == "two  spaces \\x09 end")
        #expect(fromText.header.records.contains(.initial(address: 0x10000, data: [1, 2, 3, 4])))
        let events = fromText.events.filter { $0.kind != .stackDefinition }
        #expect(events.map(\.kind) == [.store, .mark, .pmem, .ntstore, .sfence, .pmemRelease, .opBegin, .opEnd])
        #expect(events.map(\.thread) == [0, 3, 3, 3, 0, 3, 3, 3])
        #expect(fromText.names[Int(events[1].name) - 1] == expectedName)
        #expect(events[2].address == 0x30000 && events[2].size == 0x40 && events[2].isVolatile)
        #expect(events[5].address == 0x30000 && events[5].size == 0x40)
        // No escaped byte leaks into the line structure: one record per line.
        #expect(String(decoding: text, as: UTF8.self).split(separator: "\n").count == 1 + 4 + 8)
    }
}
