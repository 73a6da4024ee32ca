import Testing
@testable import PowercutTrace

/// mark, pmem and pmem-release between events, thread=, init: both forms, and the
/// reader's checks.
@Suite struct NewRecordsTests {
    @Test func eventsBetweenEventsAreNumberedMarkers() throws {
        let t = try read("""
            powercut-trace 1
            pmem 0x1000 0x1000 name=pool
            init 0x1000 data=0102
            stack 1 0x401000
            store 0x1000 8 thread=3
            mark after\\x20first thread=3
            pmem 0x8000 0x100 name=mapped volatile
            pmem-release 0x8000 0x100 stack=1
            pmem 0x8000 0x200
            """)
        #expect(t.events.map(\.kind) == [.store, .mark, .pmem, .pmemRelease, .pmem])
        #expect(t.events.map(\.seq) == [0, 1, 2, 3, 4])
        #expect(t.events.dropFirst().allSatisfy { $0.kind.isMarker })
        #expect(t.events[0].thread == 3 && t.events[1].thread == 3 && t.events[2].thread == 0)
        #expect(t.names == ["after first", "mapped"])
        #expect(t.events[2].address == 0x8000 && t.events[2].size == 0x100 && t.events[2].isVolatile && t.events[2].name == 2)
        #expect(t.events[3].stack == 1 && t.events[4].name == 0 && !t.events[4].isVolatile)
        #expect(t.header.records.contains(.initial(address: 0x1000, data: [1, 2])))
    }

    @Test func opsOfDifferentThreadsMayOverlap() throws {
        let t = try read("""
            powercut-trace 1
            pmem 0 0x1000
            op 1 begin dst=0 len=8 thread=1
            op 2 begin dst=0x100 len=8 thread=2
            op 1 end thread=1
            op 2 end thread=2
            """)
        #expect(t.eventCount == 4)
    }

    @Test func theBinaryFormWritesAThreadTagOnlyWhenTheThreadChanges() throws {
        let t = try read("powercut-trace 1\npmem 0 0x1000\nsfence thread=1\nsfence thread=1\nsfence\nsfence thread=1\n")
        let b = try written(t, .binary)
        // magic, version, pmem(03 00 80 20 00), then 09 01, 25, 25, 09 00, 25, 09 01, 25, end.
        #expect(Array(b[9...]) == [0x03, 0x00, 0x80, 0x20, 0x00, 0x09, 0x01, 0x25, 0x25, 0x09, 0x00, 0x25, 0x09, 0x01, 0x25, 0x07, 0x04])
        #expect(try Trace(reader: TraceReader(bytes: b, name: "t.pctb")).events.map(\.thread) == [1, 1, 0, 1])
    }

    @Test func theBinaryEncodingOfTheNewRecords() throws {
        let t = try read("powercut-trace 1\npmem 0x10 0x10\ninit 0x10 data=aa\nmark m\npmem 0x100 0x10 name=n volatile\npmem-release 0x100 0x10\n")
        let b = try written(t, .binary)
        #expect(Array(b[9...]) == [0x03, 0x10, 0x10, 0x00,  // pmem
                                   0x08, 0x10, 0x01, 0xAA,  // init
                                   0x2D, 0x01, 0x6D,  // mark "m"
                                   0x2E, 0x80, 0x02, 0x10, 0x03, 0x01, 0x6E,  // pmem 0x100 0x10 volatile|named "n"
                                   0x2F, 0x80, 0x02, 0x10,  // pmem-release
                                   0x07, 0x03])
    }

    @Test(arguments: [
        ("pmem 0 0x100\nsfence\npmem 0x80 0x100\n", "t.pct:4: pmem range 0x80+0x100 overlaps range 0x0+0x100"),
        ("pmem 0 0x100\nsfence\npmem-release 0 0x80\n", "t.pct:4: pmem-release 0x0+0x80 names no tracked range (the range tracked there is 0x0+0x100)"),
        ("pmem 0 0x100\nsfence\npmem-release 0x10 0x100\n", "t.pct:4: pmem-release 0x10+0x100 names no tracked range"),
        ("pmem 0 0x100\npmem-release 0 0x100\npmem-release 0 0x100\n", "t.pct:4: pmem-release 0x0+0x100 names no tracked range"),
        ("sfence\npmem 0 0\n", "t.pct:3: pmem range at 0x0 has length 0"),
        ("pmem 0 0x100\nmark\n", "t.pct:3: missing fields in 'mark' record (expected 'mark NAME [stack=ID] [thread=N]')"),
        ("pmem 0 0x100\nmark a b\n", "t.pct:3: unexpected field 'b'"),
        ("pmem 0 0x100\nsfence thread=4294967296\n", "t.pct:3: thread=4294967296 is too large"),
        ("pmem 0 0x100\nsfence thread=1 thread=2\n", "t.pct:3: key 'thread' given twice"),
        ("pmem 0 0x100\nop 1 begin dst=0 len=1 thread=1\nop 2 begin dst=0 len=1 thread=1\n", "t.pct:4: op 2 begins while op 1 (begun at line 3) is still open on thread 1"),
        ("pmem 0 0x100\nop 1 begin dst=0 len=1 thread=1\nop 1 end\n", "t.pct:4: op 1 end on thread 0, but thread 1 began it"),
        ("pmem 0 0x100\nop 1 begin dst=0 len=1 thread=1\nop 1 end thread=1\nop 1 begin dst=0 len=1 thread=2\n", "t.pct:5: op ID 1 is used twice"),
        ("pmem 0 0x100\nop 1 begin dst=0 len=1 thread=2\nsfence\n", "t.pct:end: op 1 begun at line 3 is never ended"),
        ("pmem 0 0x100\ninit 0x100 data=00\nsfence\n", "t.pct:3: init 0x100+0x1 is not inside one pmem range"),
        ("pmem 0 0x100\ninit 0xff data=0000\n", "t.pct:3: init 0xff+0x2 is not inside one pmem range"),
        ("init 0 data=00\npmem 0 0x100 volatile\n", "t.pct:2: init 0x0+0x1 lies in the volatile range 0x0+0x100"),
        ("pmem 0 0x100\ninit 0x10 data=0000\ninit 0x11 data=00\n", "t.pct:4: init 0x11+0x1 overlaps init 0x10+0x2 at line 3"),
        ("pmem 0 0x100\ninit 0x10 data=\n", "t.pct:3: init at 0x10 has no data"),
        ("pmem 0 0x100\ninit 0x10 data=0\n", "t.pct:3: data= has an odd number of hex digits"),
        ("pmem 0 0x100\ninit 0x10\n", "t.pct:3: missing fields in 'init' record"),
        ("pmem 0 0x100\ninit 0x10 size=1\n", "t.pct:3: unknown key 'size' in init record"),
        ("pmem 0 0x100\nsfence\ninit 0 data=00\n", "t.pct:4: header record 'init' after the first event"),
        ("pmem 0 0x100\nsfence\nmeta a b\n", "t.pct:4: header record 'meta' after the first event"),
        ("pmem 0 0x100\nsfence\npmem 0x200 0x10 nmae=x\n", "t.pct:4: unknown key 'nmae' in 'pmem' record (expected name=, volatile, stack=, thread=)"),
        ("pmem 0 0x100\nsfence\npmem-release 0 0x100 name=x\n", "t.pct:4: unknown key 'name' in 'pmem-release' record (expected stack=, thread=)"),
    ])
    func malformedNewRecordsAreRejected(body: String, message: String) {
        let e = error("powercut-trace 1\n" + body)
        #expect(e?.description.hasPrefix(message) == true, "got: \(e?.description ?? "nothing")")
    }

    @Test func aReleasedRangeMayBeTrackedAgainAndReleasesAreExact() throws {
        let t = try read("""
            powercut-trace 1
            pmem 0 0x100
            pmem-release 0 0x100
            pmem 0x80 0x100
            pmem 0 0x80
            pmem-release 0x80 0x100
            pmem-release 0 0x80
            """)
        #expect(t.eventCount == 5)
    }

    @Test func theBinaryReaderAppliesTheNewChecks() throws {
        // A trace the text reader rejects, written by hand in the binary form, is
        // rejected the same way.
        let bad = try binaryTrace([0x03, 0x00, 0x80, 0x02, 0x00, 0x2F, 0x00, 0x80, 0x01, 0x07, 0x01])
        let e = #expect(throws: TraceError.self) { _ = try Trace(reader: TraceReader(bytes: bad, name: "b.pctb")) }
        #expect(e?.description.hasPrefix("b.pctb:byte 14: event #0: pmem-release 0x0+0x80 names no tracked range") == true,
                "got \(e?.description ?? "")")
        let outside = try binaryTrace([0x03, 0x00, 0x10, 0x00, 0x08, 0x20, 0x01, 0xAA, 0x07, 0x00])
        let e2 = #expect(throws: TraceError.self) { _ = try Trace(reader: TraceReader(bytes: outside, name: "b.pctb")) }
        #expect(e2?.description.hasPrefix("b.pctb:byte 13: init 0x20+0x1 is not inside one pmem range") == true,
                "got \(e2?.description ?? "")")
        let unnamed = try binaryTrace([0x2D, 0x00, 0x07, 0x01])
        let e3 = #expect(throws: TraceError.self) { _ = try Trace(reader: TraceReader(bytes: unnamed, name: "b.pctb")) }
        #expect(e3?.description.contains("empty mark name") == true, "got \(e3?.description ?? "")")
    }
}

/// A binary trace: the magic, version 1, then `body`.
func binaryTrace(_ body: [UInt8]) throws -> [UInt8] { BinaryFormat.magic + [0x01] + body }

