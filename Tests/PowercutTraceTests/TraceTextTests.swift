import Testing
@testable import PowercutTrace
import PowercutTestSupport

/// The bytes of a file written by `trace`.
func written(_ trace: Trace, _ form: TraceForm) throws -> [UInt8] {
    let dir = TemporaryDirectory()
    let path = dir.file(form == .text ? "t.pct" : "t.pctb")
    try trace.write(to: path, form: form)
    return contents(path)
}

/// Converts bytes of one form into the other form.
func converted(_ bytes: [UInt8], to form: TraceForm) throws -> [UInt8] {
    let dir = TemporaryDirectory()
    try OutputFile.write(String(decoding: [], as: UTF8.self), to: dir.file("empty"))
    let input = dir.file("in"), output = dir.file("out")
    let f = try OutputFile(path: input)
    try f.write(bytes)
    try f.commit()
    try convertTrace(from: input, to: output, form: form)
    return contents(output)
}

/// Every awkward byte the text form must carry: `#`, tab, newline, CR, NUL, ESC, DEL,
/// a backslash, runs of spaces, a C1 control and bytes that are not UTF-8.
let awkward: [UInt8] = Array("a#b".utf8) + [0x09, 0x0A, 0x0D, 0x00, 0x1B] + Array("[2J".utf8) + [0x7F, 0x5C]
    + Array("x41  two  spaces ".utf8) + [0xC2, 0x9B, 0xFF, 0xFE, 0xC3] + Array("é€😀".utf8)

@Suite struct TraceTextTests {
    @Test func displayFormKeepsEveryByte() {
        var rng = SplitMix(seed: 7)
        for n in 0..<2000 {
            let bytes = (0..<(n % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let shown = TraceText.display(bytes)
            #expect(TraceText.bytes(of: shown) == bytes, "bytes \(bytes)")
            #expect(!shown.utf8.contains { $0 < 0x20 || $0 == 0x7F }, "display form of \(bytes) holds a control byte")
        }
        #expect(TraceText.display(awkward) == "a#b\\x09\\x0a\\x0d\\x00\\x1b[2J\\x7f\\x5cx41  two  spaces \\xc2\\x9b\\xff\\xfe\\xc3é€😀")
    }

    @Test func textFieldsEscapeWhatWouldChangeTheLine() {
        var out: [UInt8] = []
        awkward.withUnsafeBufferPointer { TraceText.appendTextField($0, .token, into: &out) }
        #expect(String(decoding: out, as: UTF8.self)
            == "a\\x23b\\x09\\x0a\\x0d\\x00\\x1b[2J\\x7f\\x5cx41\\x20\\x20two\\x20\\x20spaces\\x20\\xc2\\x9b\\xff\\xfe\\xc3é€😀")
        out = []
        Array(" one two  three ".utf8).withUnsafeBufferPointer { TraceText.appendTextField($0, .metaValue, into: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "\\x20one two\\x20\\x20three\\x20")
    }

    /// A trace whose every free-text field holds the awkward bytes.
    func awkwardTrace() -> Trace {
        let s = TraceText.display(awkward)
        var t = Trace()
        t.header.records = [
            .meta(key: "subject", value: s),
            .meta(key: "spaces", value: "  a  b c  "),
            .meta(key: "empty", value: ""),
            .module(Module(path: "/lib/" + s, base: 0x1000, size: 0x1000, buildID: "00ff")),
            .pmem(PmemRange(base: 0x10000, length: 0x100, name: s)),
        ]
        var op = Event(kind: .opBegin, seq: 0, address: 0x10000, size: 8)
        op.op = 1
        op.name = 1
        var end = Event(kind: .opEnd, seq: 1)
        end.op = 1
        var mark = Event(kind: .mark, seq: 2)
        mark.name = 2
        t.events = [op, end, mark]
        t.names = [s, "mark " + s + "\\x0astore 0x10000 8"]
        return t
    }

    @Test func awkwardStringsRoundTripTextBinaryText() throws {
        let t = awkwardTrace()
        let text = try written(t, .text)
        // One line per record: no string injected a record.
        #expect(text.filter { $0 == 0x0A }.count == 1 + t.header.records.count + t.events.count)
        #expect(!text.contains(0x09) && !text.contains(0x00) && !text.contains(0x1B) && !text.contains(0x23))
        let binary = try converted(text, to: .binary)
        #expect(try converted(binary, to: .text) == text)
        let back = try Trace(reader: TraceReader(bytes: text, name: "t.pct"))
        #expect(back == t)
        #expect(try Trace(reader: TraceReader(bytes: binary, name: "t.pctb")) == t)
    }

    @Test func awkwardStringsRoundTripBinaryTextBinary() throws {
        let t = awkwardTrace()
        let binary = try written(t, .binary)
        // The binary form holds the raw bytes themselves.
        #expect(binary.firstRange(of: awkward) != nil)
        let text = try converted(binary, to: .text)
        #expect(try converted(text, to: .binary) == binary)
        #expect(TraceText.bytes(of: try Trace(reader: TraceReader(bytes: binary, name: "t.pctb")).header.modules[0].path)
            == Array("/lib/".utf8) + awkward)
    }

    @Test func aNewlineInABinaryStringCannotInjectARecord() throws {
        // Issue: a binary trace whose op name held "\nstore …" converted into text that
        // gained a store (and a different verdict).
        let t = awkwardTrace()
        let text = try converted(try written(t, .binary), to: .text)
        let back = try Trace(reader: TraceReader(bytes: text, name: "t.pct"))
        #expect(back.events.map(\.kind) == [.opBegin, .opEnd, .mark])
    }

    @Test func theReaderDecodesEscapesInEveryFreeTextField() throws {
        let t = try read("""
            powercut-trace 1
            meta host my\\x20box\\x0a \\x5cx41 two
            module /opt/a\\x23b.so 0x1000 0x1000
            pmem 0x0 0x100 name=p\\xffq
            op 1 begin dst=0 len=1 name=a\\x09b
            op 1 end
            mark m\\x00
            """)
        #expect(t.header.meta[0].value == "my box\\x0a \\x5cx41 two")
        #expect(t.header.modules[0].path == "/opt/a#b.so")
        #expect(t.header.pmem[0].name == "p\\xffq")
        #expect(t.names == ["a\\x09b", "m\\x00"])
    }

    @Test(arguments: [
        ("mark a\\b", "malformed escape '\\x5cb' (a backslash must begin \\xHH, two hex digits) in mark name"),
        ("mark a\\x4", "malformed escape '\\x5cx4'"),
        ("mark a\\x4g", "malformed escape '\\x5cx4g'"),
        ("mark a\\", "malformed escape '\\x5c'"),
        ("mark a\\X41", "malformed escape"),
    ])
    func anyOtherBackslashIsRejected(line: String, message: String) {
        let e = error("powercut-trace 1\n\(line)\n")
        #expect(e?.description.hasPrefix("t.pct:2: \(message)") == true, "got: \(e?.description ?? "nothing")")
    }

    @Test func metaKeysAndBuildIDsAreNotFreeText() {
        #expect(error("powercut-trace 1\nmeta a\\x20b v\n")?.description.hasPrefix("t.pct:2: bad meta key 'a\\x5cx20b'") == true)
        // A C1 control is valid UTF-8 but not printable: no key holds one, in either form.
        #expect(error("powercut-trace 1\nmeta a\u{8e}b v\n")?.description.hasPrefix("t.pct:2: bad meta key 'a\\xc2\\x8eb'") == true)
        #expect(error("powercut-trace 1\nmodule /a 0 1 build-id=12\\x34\n")?.description.hasPrefix("t.pct:2: bad build-id") == true)
        #expect(error("powercut-trace 1\nmodule /a 0 1 build-id=xyz\n")?.description.hasPrefix("t.pct:2: bad build-id 'xyz' (expected hex digits only)") == true)
    }
}
