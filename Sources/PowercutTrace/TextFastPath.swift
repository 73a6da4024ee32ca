import Glibc

// The text reader's fast path: the common event records in their usual shape, parsed
// in one pass straight out of the input buffer — no lines cut out first, no tokens, no
// bounds checks per byte. It takes a line only when it is sure the general path would
// read the very same event from it: anything unusual (leading blanks, a key given
// twice, a number with more digits than it needs, an op name not seen yet, any byte
// it does not expect) or anything wrong makes it stop and leave the line to the
// general path, which parses, checks and words every error. So the language and the
// messages are the general path's, and no check lives only here.
//
// Why no bounds checks: the fast path only reads lines that end in a newline inside
// the buffer (the "zone"), and every scan stops at a byte it does not expect, so at the
// newline at the latest. 8-byte loads (keywords and keys compared as words) may read
// up to 7 bytes past a newline, so the zone ends 8 bytes before the buffer's capacity.

/// The part of the input buffer the fast path may read: lines up to the last newline
/// at least 8 bytes before the end of the buffer's memory. Kept while the buffer does
/// not change, so a tail that holds no newline is searched once.
struct FastZone {
    var buffer: UnsafeMutablePointer<UInt8>?
    var end = -1
    var offset: UInt64 = 0
    /// One past the zone's last newline (an index into the buffer).
    var stop = 0
}

/// What a byte is to the fast path, besides a hex digit's value (0-15).
enum FastClass {
    static let blank: UInt8 = 16  // space, tab
    static let hash: UInt8 = 17
    static let cr: UInt8 = 18
    static let lf: UInt8 = 19
    static let other: UInt8 = 32
}

extension TextTraceReader {
    /// No line longer than this is taken by the fast path (the general path decides
    /// what to make of long ones: it alone words the 8 MiB limit).
    static let fastLineLimit = 1 << 22

    /// The value of two hex digits as they lie in memory (a little-endian 16-bit
    /// load), or 0x100 when either is not one. Built once (Swift initializes a global
    /// exactly once, thread-safely) and never written again: shared by every reader.
    nonisolated(unsafe) static let hexPairTable: UnsafePointer<UInt16> = {
        let t = UnsafeMutablePointer<UInt16>.allocate(capacity: 1 << 16)
        for k in 0..<(1 << 16) {
            if let hi = hexDigit(UInt8(k & 0xFF)), let lo = hexDigit(UInt8(k >> 8)) {
                t[k] = UInt16(hi) << 4 | UInt16(lo)
            } else {
                t[k] = 0x100
            }
        }
        return UnsafePointer(t)
    }()

    static func makeByteClasses() -> UnsafeMutablePointer<UInt8> {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for c in 0..<256 { t[c] = hexDigit(UInt8(c)) ?? FastClass.other }
        t[0x20] = FastClass.blank
        t[0x09] = FastClass.blank
        t[0x23] = FastClass.hash
        t[0x0D] = FastClass.cr
        t[0x0A] = FastClass.lf
        return t
    }

    /// Remembers an op name as written, with its interned index, for the fast path.
    func rememberRawName(_ raw: UnsafeBufferPointer<UInt8>, _ index: UInt32) {
        guard raw.count <= 256, !rawNames.contains(where: { $0.index == index && $0.raw.elementsEqual(raw) }) else { return }
        if rawNames.count == 16 { rawNames.removeFirst() }
        rawNames.append((Array(raw), index))
    }

    /// Reads events the fast way into `out[first...]` until `max`, the end of the zone
    /// or a line it leaves to the general path; returns the new count. The input's
    /// position and the line number follow the lines taken.
    func fastEvents(_ out: UnsafeMutablePointer<Event>, _ first: Int, _ max: Int, _ data: inout [UInt8]) -> Int {
        let base = input.buffer
        if fastZone.buffer != base || fastZone.end != input.end || fastZone.offset != input.bufferOffset {
            fastZone = FastZone(buffer: base, end: input.end, offset: input.bufferOffset, stop: zoneStop())
        }
        let start = UnsafePointer(base)
        var p = start + input.position
        let stop = start + fastZone.stop
        var n = first
        var line = lineNumber
        var parser = FastLineParser(byteClass: UnsafePointer(byteClass), hexPairs: hexPairs, rawNames: rawNames)
        var next = seq
        let recordsLines = recordsLines
        while n < max && p < stop {
            let c = p[0]
            if c == 0x0A {  // a blank line
                line += 1
                p += 1
                continue
            }
            if c == 0x23 {  // a comment line
                let lf = UnsafePointer(memchr(p, 0x0A, p.distance(to: stop))!.assumingMemoryBound(to: UInt8.self))
                if p.distance(to: lf) > Self.fastLineLimit { break }
                line += 1
                p = lf + 1
                continue
            }
            let e = out + n  // parsed in place: a line left to the general path is overwritten
            guard let lf = parser.fastLine(p, e, &data) else { break }
            // A store, write-back or fence needs nothing more from the validator than
            // its stack check (fastLine checked a store's SIZE and range): only markers
            // go to it whole, and events that name an undefined stack, for the message.
            guard lf <= Self.fastLineLimit,
                  e.pointee.kind.rawValue <= EventKind.wpqflush.rawValue
                    && (e.pointee.stack == 0 || validator.isDefined(stack: e.pointee.stack))
                    || validates(e, line: line + 1) else {
                // Its data, the last bytes in the pool, go too.
                if e.pointee.flags & Event.Flags.hasData != 0 { data.removeLast(Int(e.pointee.size)) }
                break
            }
            line += 1
            e.pointee.seq = next
            next += 1
            n += 1
            if recordsLines { lines.append(line) }
            p += lf + 1
        }
        input.position = start.distance(to: p)
        lineNumber = line
        seq = next
        fastEventCount += n - first
        return n
    }

    /// Whether the validator accepts the event (a marker, or one naming an undefined stack).
    @inline(never)
    private func validates(_ e: UnsafeMutablePointer<Event>, line: Int) -> Bool {
        validator.event(e.pointee, at: .line(line)) == nil
    }

    /// One past the last newline the zone may hold, searched back from the end.
    private func zoneStop() -> Int {
        let base = input.buffer
        var k = Swift.min(input.end, input.capacity - 8) - 1
        while k >= input.position && base[k] != 0x0A { k -= 1 }
        return k + 1
    }
}

/// The line parser of the fast path: a value made per batch, so the tables it reads
/// stay in registers instead of being loaded from the reader at every byte.
struct FastLineParser {
    let byteClass: UnsafePointer<UInt8>
    let hexPairs: UnsafePointer<UInt16>
    let rawNames: [(raw: [UInt8], index: UInt32)]
    /// The last eight hex digits read at the start of a number, as they lie in memory
    /// (a little-endian word), and their value: "00000000" to begin with.
    var lastEight: UInt64 = 0x3030_3030_3030_3030
    var lastEightValue: UInt64 = 0
    /// The last line tail ` stack=D` (one digit) taken, as a little-endian word, and
    /// its stack: " stack=1" to begin with.
    var lastTail: UInt64 = 0x3d6b_6361_7473_20 | 0x31 << 56
    var lastTailStack: UInt32 = 1
    /// The ten bytes and newline after the last store's address that were its SIZE and
    /// its ` stack=D` tail (two little-endian words, the second masked to three bytes;
    /// none to begin with: no such word starts with a NUL), and their SIZE and stack.
    var lastStoreRest: (UInt64, UInt64) = (0, 0)
    var lastStoreSize: UInt64 = 0
    var lastStoreStack: UInt32 = 0

    @inline(__always)
    private func word(_ p: UnsafePointer<UInt8>) -> UInt64 { UnsafeRawPointer(p).loadUnaligned(as: UInt64.self) }

    /// Whether the byte ends a field: blank, `#`, CR or LF.
    @inline(__always)
    private func ends(_ c: UInt8) -> Bool { byteClass[Int(c)] &- FastClass.blank < 4 }

    @inline(__always)
    private func isBlank(_ c: UInt8) -> Bool { byteClass[Int(c)] == FastClass.blank }

    /// Skips the blanks at `i`; false when there were none.
    @inline(__always)
    private func skipBlanks(_ p: UnsafePointer<UInt8>, _ i: inout Int) -> Bool {
        guard isBlank(p[i]) else { return false }
        repeat { i &+= 1 } while isBlank(p[i])
        return true
    }

    // Keywords and keys as little-endian words, with the masks that keep their length.
    private static let m2: UInt64 = 0xFFFF, m3: UInt64 = 0xFF_FFFF, m4: UInt64 = 0xFFFF_FFFF, m5: UInt64 = 0xFF_FFFF_FFFF
    private static let m6: UInt64 = 0xFFFF_FFFF_FFFF, m7: UInt64 = 0xFF_FFFF_FFFF_FFFF
    private static let kStore: UInt64 = 0x65_726f_7473, kSfence: UInt64 = 0x6563_6e65_6673, kNtstore: UInt64 = 0x65_726f_7473_746e
    private static let kClwb: UInt64 = 0x6277_6c63, kClflush: UInt64 = 0x68_7375_6c66_6c63, kMfence: UInt64 = 0x6563_6e65_666d
    private static let kFence: UInt64 = 0x65_636e_6566, kWpqflush: UInt64 = 0x6873_756c_6671_7077, kOp: UInt64 = 0x706f
    private static let kEnd: UInt64 = 0x64_6e65, kBegin: UInt64 = 0x6e_6967_6562
    private static let kStackEq: UInt64 = 0x3d6b_6361_7473, kThreadEq: UInt64 = 0x3d_6461_6572_6874, kDataEq: UInt64 = 0x3d_6174_6164
    private static let kDstEq: UInt64 = 0x3d74_7364, kLenEq: UInt64 = 0x3d6e_656c, kSrcEq: UInt64 = 0x3d63_7273, kNameEq: UInt64 = 0x3d_656d_616e
    private static let kContract: UInt64 = 0x7463_6172_746e_6f63, kPersist: UInt64 = 0x74_7369_7372_6570, kNone: UInt64 = 0x656e_6f6e
    private static let kFlushcac: UInt64 = 0x6361_6368_7375_6c66

    /// Parses the line at `p` as a common event; the index of its newline, or nil when
    /// the line is for the general path. Data bytes go to `data` (nothing is left there
    /// on nil).
    @inline(__always)
    mutating func fastLine(_ p: UnsafePointer<UInt8>, _ e: UnsafeMutablePointer<Event>, _ data: inout [UInt8]) -> Int? {
        let w = word(p)
        let kind: EventKind
        var i: Int
        switch p[0] {
        case 0x73:  // s
            if w & Self.m5 == Self.kStore { kind = .store; i = 5 } else if w & Self.m6 == Self.kSfence { kind = .sfence; i = 6 } else { return nil }
        case 0x6E:  // n
            guard w & Self.m7 == Self.kNtstore else { return nil }
            kind = .ntstore
            i = 7
        case 0x63:  // c
            if w & Self.m4 == Self.kClwb {
                kind = .clwb
                i = 4
            } else if w & Self.m7 == Self.kClflush {
                if p[7] == 0x6F && p[8] == 0x70 && p[9] == 0x74 { kind = .clflushopt; i = 10 } else { kind = .clflush; i = 7 }
            } else {
                return nil
            }
        case 0x6D:  // m
            guard w & Self.m6 == Self.kMfence else { return nil }
            kind = .mfence
            i = 6
        case 0x66:  // f
            guard w & Self.m5 == Self.kFence else { return nil }
            kind = .fence
            i = 5
        case 0x77:  // w
            guard w == Self.kWpqflush else { return nil }
            kind = .wpqflush
            i = 8
        case 0x6F:  // o
            guard w & Self.m2 == Self.kOp else { return nil }
            return fastOp(p, e)
        default:
            return nil
        }
        e.pointee = Event(kind: kind)
        var afterAddress = Int.min  // where a store's address ends
        if kind.rawValue <= EventKind.clflush.rawValue {
            // The keyword ends in a blank: skipBlanks sees to it.
            guard skipBlanks(p, &i), let address = fastNumber(p, &i) else { return nil }
            e.pointee.address = address
            if kind.rawValue <= EventKind.ntstore.rawValue {
                // The rest of the line, when it repeats the last store's ` S stack=D`
                // (ten bytes and the newline): its SIZE and stack. (The second word is
                // read only when the first holds no newline.)
                if word(p + i) == lastStoreRest.0 && word(p + (i &+ 8)) & Self.m3 == lastStoreRest.1 {
                    guard TraceValidator.storeFits(address: address, size: lastStoreSize) else { return nil }
                    e.pointee.size = lastStoreSize
                    e.pointee.stack = lastStoreStack
                    return i &+ 10
                }
                afterAddress = i
                // A store the validator would reject goes the general way, which says why.
                guard skipBlanks(p, &i), let size = fastNumber(p, &i),
                      TraceValidator.storeFits(address: address, size: size) else { return nil }
                e.pointee.size = size
            }
        } else {
            guard ends(p[i]) else { return nil }
        }
        // The usual tails — none, or one space, `stack=N` (no leading zero, at most 9
        // digits) — and the newline, without the option loop; anything else goes
        // through it.
        if p[i] == 0x0A { return i }
        // The last ` stack=D` tail of one digit taken, when these bytes repeat it.
        let tail = word(p + i)
        if tail == lastTail && p[i &+ 8] == 0x0A {
            e.pointee.stack = lastTailStack
            if i &+ 8 == afterAddress &+ 10 { rememberStoreRest(p + afterAddress, e.pointee) }
            return i &+ 8
        }
        if p[i] == 0x20 && tail &>> 8 & Self.m6 == Self.kStackEq {
            var k = i + 7
            var d = p[k] &- 0x31
            if d < 9 {
                var v = UInt64(d) + 1
                k &+= 1
                d = p[k] &- 0x30
                while d < 10 {
                    v = v &* 10 &+ UInt64(d)
                    k &+= 1
                    d = p[k] &- 0x30
                }
                if p[k] == 0x0A && k &- (i + 7) <= 9 {
                    e.pointee.stack = UInt32(truncatingIfNeeded: v)
                    if k == i &+ 8 {
                        lastTail = tail
                        lastTailStack = UInt32(truncatingIfNeeded: v)
                        if k == afterAddress &+ 10 { rememberStoreRest(p + afterAddress, e.pointee) }
                    }
                    return k
                }
            }
        }
        return fastOptions(p, i, e, &data)
    }

    /// Remembers the ten bytes and newline after a store's address that read as its
    /// SIZE and a ` stack=D` tail.
    @inline(__always)
    private mutating func rememberStoreRest(_ rest: UnsafePointer<UInt8>, _ e: Event) {
        lastStoreRest = (word(rest), word(rest + 8) & Self.m3)
        lastStoreSize = e.size
        lastStoreStack = e.stack
    }

    /// `stack=`, `thread=` and, on stores, `data=`, each at most once, then the line's end.
    @inline(__always)
    private mutating func fastOptions(_ p: UnsafePointer<UInt8>, _ start: Int, _ e: UnsafeMutablePointer<Event>, _ data: inout [UInt8]) -> Int? {
        let pool = data.count
        if let k = options(p, start, e, &data) { return k }
        if data.count != pool { data.removeLast(data.count - pool) }
        return nil
    }

    @inline(__always)
    private mutating func options(_ p: UnsafePointer<UInt8>, _ start: Int, _ e: UnsafeMutablePointer<Event>, _ data: inout [UInt8]) -> Int? {
        var i = start
        var seen: UInt8 = 0
        while skipBlanks(p, &i) && !ends(p[i]) {
            let w = word(p + i)
            if w & Self.m6 == Self.kStackEq && seen & 1 == 0 {
                i += 6
                guard let s = fastNumber(p, &i), s > 0 && s <= UInt64(UInt32.max) else { return nil }
                e.pointee.stack = UInt32(s)
                seen |= 1
            } else if w & Self.m7 == Self.kThreadEq && seen & 2 == 0 {
                i += 7
                guard let t = fastNumber(p, &i), t <= UInt64(UInt32.max) else { return nil }
                e.pointee.thread = UInt32(t)
                seen |= 2
            } else if w & Self.m5 == Self.kDataEq && seen & 4 == 0 && e.pointee.kind.isStore {
                i += 5
                guard let k = fastData(p, i, e.pointee.size, &data) else { return nil }
                i = k
                e.pointee.dataOffset = UInt32(data.count - Int(e.pointee.size))
                e.pointee.flags |= Event.Flags.hasData
                seen |= 4
            } else {
                return nil
            }
        }
        return lineEnd(p, i)
    }

    /// Decodes `size` bytes of hex at `i` into `data`; the index after them (which must
    /// end the field), or nil with `data` as it was.
    @inline(never)
    private func fastData(_ p: UnsafePointer<UInt8>, _ i: Int, _ size: UInt64, _ data: inout [UInt8]) -> Int? {
        guard size > 0 && size <= TraceValidator.maxStoreSize else { return nil }
        let n = Int(size)
        let pool = data.count
        data.append(contentsOf: repeatElement(0, count: n))
        let ok = data.withUnsafeMutableBufferPointer { b -> Bool in
            let out = b.baseAddress! + pool
            var k = i
            for j in 0..<n {
                let hi = byteClass[Int(p[k])], lo = byteClass[Int(p[k + 1])]
                if hi | lo >= 16 { return false }
                out[j] = hi << 4 | lo
                k += 2
            }
            return ends(p[k])
        }
        guard ok else {
            data.removeLast(n)
            return nil
        }
        return i + 2 * n
    }

    /// The end of the line at `i` (a `#` comment, CR LF or LF): the newline's index.
    @inline(__always)
    private func lineEnd(_ p: UnsafePointer<UInt8>, _ i: Int) -> Int? {
        switch p[i] {
        case 0x0A: return i
        case 0x0D: return p[i + 1] == 0x0A ? i + 1 : nil
        case 0x23:
            // The zone ends in a newline, so one is there; a comment longer than the
            // fast path takes is found too long by the caller.
            var k = i + 1
            while p[k] != 0x0A { k += 1 }
            return k
        default: return nil
        }
    }

    /// A number as the general path reads it — decimal, or hex after `0x`/`0X` — that
    /// ends its field; nil for anything else, and for more digits than 64 bits need
    /// (leading zeros are the general path's).
    @inline(__always)
    private mutating func fastNumber(_ p: UnsafePointer<UInt8>, _ i: inout Int) -> UInt64? {
        var k = i
        var v: UInt64 = 0
        if p[k] == 0x30 && p[k &+ 1] | 0x20 == 0x78 {
            // Hex, two digits at a time (a pair's second byte may be the newline that
            // ends the run: the zone leaves room after it).
            k &+= 2
            let first = k
            // Eight digits at once when there are as many: the last eight-digit start
            // read, when these bytes repeat it (nearby addresses share their first
            // digits), or four pairs looked up side by side. Then four more (an
            // address of 12 digits ends there), then pair by pair.
            let w = word(p + k)
            var eight = w == lastEight
            if eight {
                v = lastEightValue
            } else {
                let p0 = hexPairs[Int(w & 0xFFFF)], p1 = hexPairs[Int(w &>> 16 & 0xFFFF)]
                let p2 = hexPairs[Int(w &>> 32 & 0xFFFF)], p3 = hexPairs[Int(w &>> 48)]
                if (p0 | p1 | p2 | p3) <= 0xFF {
                    v = UInt64(p0) &<< 24 | UInt64(p1) &<< 16 | UInt64(p2) &<< 8 | UInt64(p3)
                    lastEight = w
                    lastEightValue = v
                    eight = true
                }
            }
            if eight {
                k &+= 8
                let h = UnsafeRawPointer(p + k).loadUnaligned(as: UInt32.self)
                let p4 = hexPairs[Int(h & 0xFFFF)], p5 = hexPairs[Int(h &>> 16)]
                if (p4 | p5) <= 0xFF {
                    v = v &<< 16 | UInt64(p4) &<< 8 | UInt64(p5)
                    k &+= 4
                    if ends(p[k]) {
                        i = k
                        return v
                    }
                }
            }
            while true {
                let pair = hexPairs[Int(UnsafeRawPointer(p + k).loadUnaligned(as: UInt16.self))]
                if pair > 0xFF { break }
                v = v &<< 8 | UInt64(pair)
                k &+= 2
            }
            let d = byteClass[Int(p[k])]
            if d < 16 {
                v = v &<< 4 | UInt64(d)
                k &+= 1
            }
            guard k != first && k &- first <= 16 && ends(p[k]) else { return nil }
        } else {
            let first = k
            var d = p[k] &- 0x30
            if d < 10 && ends(p[k &+ 1]) {  // one digit: a store's usual SIZE
                i = k &+ 1
                return UInt64(d)
            }
            while d < 10 {
                v = v &* 10 &+ UInt64(d)
                k &+= 1
                d = p[k] &- 0x30
            }
            guard k != first && k &- first <= 19 && ends(p[k]) else { return nil }
        }
        i = k
        return v
    }

    /// `op ID end` and `op ID begin dst= len= [src=] [name=] [contract=]` with a name
    /// the general path has read before, plus `stack=` and `thread=`.
    @inline(__always)
    private mutating func fastOp(_ p: UnsafePointer<UInt8>, _ e: UnsafeMutablePointer<Event>) -> Int? {
        var i = 2
        guard skipBlanks(p, &i), let id = fastNumber(p, &i), skipBlanks(p, &i) else { return nil }
        let w = word(p + i)
        if w & Self.m3 == Self.kEnd && ends(p[i + 3]) {
            e.pointee = Event(kind: .opEnd)
            e.pointee.op = id
            if p[i + 3] == 0x0A { return i + 3 }
            var none: [UInt8] = []
            return fastOptions(p, i + 3, e, &none)
        }
        guard w & Self.m5 == Self.kBegin && ends(p[i + 5]) else { return nil }
        i += 5
        e.pointee = Event(kind: .opBegin)
        e.pointee.op = id
        var seen: UInt8 = 0
        while skipBlanks(p, &i) && !ends(p[i]) {
            let w = word(p + i)
            let key4 = w & Self.m4
            if key4 == Self.kDstEq && seen & 1 == 0 {
                i += 4
                guard let v = fastNumber(p, &i) else { return nil }
                e.pointee.address = v
                seen |= 1
            } else if key4 == Self.kLenEq && seen & 2 == 0 {
                i += 4
                guard let v = fastNumber(p, &i) else { return nil }
                e.pointee.size = v
                seen |= 2
            } else if key4 == Self.kSrcEq && seen & 4 == 0 {
                i += 4
                guard let v = fastNumber(p, &i) else { return nil }
                e.pointee.source = v
                e.pointee.flags |= Event.Flags.hasSource
                seen |= 4
            } else if w & Self.m5 == Self.kNameEq && seen & 8 == 0 {
                i += 5
                let s = i
                while !ends(p[i]) { i += 1 }
                guard let index = rawName(p + s, i - s) else { return nil }
                e.pointee.name = index
                seen |= 8
            } else if w == Self.kContract && p[i + 8] == 0x3D && seen & 16 == 0 {
                i += 9
                let v = word(p + i)
                if v == Self.kFlushcac && p[i + 8] == 0x68 && p[i + 9] == 0x65 {  // "flushcache"
                    e.pointee.contract = .flushcache
                    i += 10
                } else if v & Self.m7 == Self.kPersist {
                    e.pointee.contract = .persist
                    i += 7
                } else if v & Self.m4 == Self.kNone {
                    e.pointee.contract = .none
                    i += 4
                } else {
                    return nil
                }
                guard ends(p[i]) else { return nil }
                e.pointee.flags |= Event.Flags.explicitContract
                seen |= 16
            } else if w & Self.m6 == Self.kStackEq && seen & 32 == 0 {
                i += 6
                guard let s = fastNumber(p, &i), s > 0 && s <= UInt64(UInt32.max) else { return nil }
                e.pointee.stack = UInt32(s)
                seen |= 32
            } else if w & Self.m7 == Self.kThreadEq && seen & 64 == 0 {
                i += 7
                guard let t = fastNumber(p, &i), t <= UInt64(UInt32.max) else { return nil }
                e.pointee.thread = UInt32(t)
                seen |= 64
            } else {
                return nil
            }
        }
        guard seen & 3 == 3 else { return nil }
        return lineEnd(p, i)
    }

    /// The interned index of an op name as written, when the general path has read it.
    @inline(__always)
    private func rawName(_ s: UnsafePointer<UInt8>, _ n: Int) -> UInt32? {
        for r in rawNames where r.raw.count == n {
            if r.raw.withUnsafeBufferPointer({ memcmp($0.baseAddress!, s, n) == 0 }) { return r.index }
        }
        return nil
    }
}
