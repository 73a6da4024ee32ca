import PowercutCrash
import PowercutModel
import PowercutTrace

/// Builds in-memory traces event by event.
struct TraceBuilder {
    var header: TraceHeader
    var events: [Event] = []
    var data: [UInt8] = []

    init(lineSize: UInt64 = 64, domain: Domain = .adr, pmem: [PmemRange], initial: [(UInt64, [UInt8])] = []) {
        var records: [HeaderRecord] = [.lineSize(lineSize), .domain(domain)]
        records += pmem.map { .pmem($0) }
        records += initial.map { .initial(address: $0.0, data: $0.1) }
        header = TraceHeader(records: records)
    }

    private mutating func add(_ e: Event) {
        var e = e
        e.seq = UInt64(events.count)
        events.append(e)
    }

    mutating func store(_ address: UInt64, _ bytes: [UInt8], nt: Bool = false, thread: UInt32 = 0, stack: UInt32 = 0) {
        var e = Event(kind: nt ? .ntstore : .store, address: address, size: UInt64(bytes.count), stack: stack)
        e.flags |= Event.Flags.hasData
        e.dataOffset = UInt32(data.count)
        e.thread = thread
        data += bytes
        add(e)
    }

    mutating func storeWithoutData(_ address: UInt64, _ size: UInt64) {
        add(Event(kind: .store, address: address, size: size))
    }

    mutating func event(_ kind: EventKind, _ address: UInt64 = 0, thread: UInt32 = 0) {
        var e = Event(kind: kind, address: address)
        e.thread = thread
        add(e)
    }

    mutating func op(_ id: UInt64, begin: Bool, contract: Contract = .flushcache, thread: UInt32 = 0) {
        var e = Event(kind: begin ? .opBegin : .opEnd, address: 0x1000, size: 8)
        e.op = id
        e.contract = contract
        e.thread = thread
        add(e)
    }

    /// A `pmem` declared between events.
    mutating func declare(_ base: UInt64, _ length: UInt64, volatile: Bool = false) {
        var e = Event(kind: .pmem, address: base, size: length)
        if volatile { e.flags |= Event.Flags.isVolatile }
        add(e)
    }

    mutating func release(_ base: UInt64, _ length: UInt64) {
        add(Event(kind: .pmemRelease, address: base, size: length))
    }

    mutating func mark() {
        var e = Event(kind: .mark)
        e.name = 0
        add(e)
    }

    var trace: Trace { Trace(header: header, events: events, data: data) }
}

/// Every cut the tracker took, with the images it lists (each image as the bytes of
/// every tracked range), built the way a worker builds them: resets, then digit
/// changes.
struct Walked {
    var cuts: [CutImages] = []
    /// Per cut: the images in enumeration order, and whether each was covered.
    var images: [[[UInt8]]] = []
    var covered: [[Bool]] = []
}

func walk(_ trace: Trace, selection: CutSelection = .all, plan: ImagePlan = ImagePlan(),
          options: ReplayOptions = ReplayOptions()) throws -> Walked {
    let declared = trace.events.filter { $0.kind == .pmem && !$0.isVolatile && $0.size > 0 }
        .map { (range: PmemRange(base: $0.address, length: $0.size), event: $0.seq) }
    let layout = try ImageLayout(header: trace.header, declared: declared)
    let memory = try ImageMemory(layout: layout)
    var walked = Walked()
    let tracker = ImageTracker(layout: layout, selection: selection, plan: plan) { images throws(CrashError) in
        walked.cuts.append(images)
        memory.begin(images)
        var cursor = ImageCursor(images)
        var list: [[UInt8]] = []
        var cov: [Bool] = []
        while cursor.next() {
            memory.apply(cursor)
            list.append(images.ranges.flatMap { memory.bytes($0) })
            cov.append(cursor.covered)
        }
        walked.images.append(list)
        walked.covered.append(cov)
    }
    let replayer = Replayer(header: trace.header, options: options, observer: tracker)
    replayer.apply(trace.batch)
    _ = replayer.finish()
    if let e = tracker.error { throw e }
    return walked
}
