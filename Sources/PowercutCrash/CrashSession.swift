import Glibc
import PowercutModel
import PowercutTrace

/// Options of a crash-image run.
public struct CrashOptions: Sendable {
    public var replay = ReplayOptions()
    public var selection: CutSelection = .fences
    public var plan = ImagePlan()
    /// `--initial RANGE=FILE`.
    public var initial: [(range: String, file: String)] = []
    public var jobs = 2
    /// Seconds one check may take.
    public var timeout: Double = 10
    /// Where failing images are saved (nil: a new folder in TMPDIR).
    public var saveDirectory: String?
    /// Report (and save) every failing image, not only the first.
    public var reportAll = false

    public init() {}
}

/// A crash-image run over one trace file: counts, lists, or checks its images. The
/// trace is replayed once to count (and to find bad input before any checker runs),
/// and once more to check.
public final class CrashSession {
    public let path: String
    public let options: CrashOptions
    /// Call-stack frames by ID (from the trace), for reports.
    public private(set) var stacks: [UInt32: [UInt64]] = [:]
    /// Loaded objects (from the trace), for symbolizing those frames.
    public private(set) var modules: [Module] = []

    public init(path: String, options: CrashOptions) {
        self.path = path
        self.options = options
    }

    /// Replays the trace, calling `body` with each checked cut's images.
    func replay(_ body: @escaping (CutImages, ImageLayout) throws(CrashError) -> Void) throws -> ImageLayout {
        let reader = try TraceReader(path: path)
        let layout = try ImageLayout(header: reader.header, declared: try Self.declaredRanges(path), initial: options.initial)
        let tracker = ImageTracker(layout: layout, selection: options.selection, plan: options.plan) { images throws(CrashError) in
            try body(images, layout)
        }
        let replayer = Replayer(header: reader.header, options: options.replay, observer: tracker)
        var batch = EventBatch()
        while try reader.read(into: &batch) {
            replayer.apply(batch)
            if tracker.error != nil { break }
        }
        if let e = tracker.error { throw e }
        _ = replayer.finish(names: reader.names)
        if let e = tracker.error { throw e }
        stacks = reader.stacks
        modules = reader.header.modules
        return layout
    }

    /// The non-volatile ranges the trace declares between events, in order, with the
    /// declaring event (a pass over the trace's records that keeps only these).
    static func declaredRanges(_ path: String) throws -> [(range: PmemRange, event: UInt64)] {
        let reader = try TraceReader(path: path)
        var out: [(range: PmemRange, event: UInt64)] = []
        var batch = EventBatch()
        var pending: [(Event)] = []
        while try reader.read(into: &batch) {
            for e in batch.events where e.kind == .pmem && !e.isVolatile && e.size > 0 { pending.append(e) }
        }
        let names = reader.names
        for e in pending {
            let name = e.name > 0 && Int(e.name) <= names.count ? names[Int(e.name) - 1] : nil
            out.append((PmemRange(base: e.address, length: e.size, name: name, isVolatile: false), e.seq))
        }
        return out
    }

    /// Every checked cut with its exact count and how many images would be checked.
    public func count() throws -> (cuts: [CutSummary], ranges: [ImageRange]) {
        var cuts: [CutSummary] = []
        let layout = try replay { images, _ throws(CrashError) in
            var summary = CutSummary(images)
            if images.previous?.complete == true && images.constantsWerePossible {
                var cursor = ImageCursor(images)
                while cursor.next() { if cursor.covered { summary.repeated += 1 } }
            }
            cuts.append(summary)
        }
        return (cuts, layout.ranges)
    }

    /// The images of each checked cut, compactly: per line that differs from the newest
    /// image, which prefix of its at-risk cached writes and which at-risk non-temporal
    /// writes persisted. At most `limit` images per cut.
    public func list(limit: UInt64 = .max, _ emit: @escaping (String) -> Void) throws {
        _ = try replay { images, _ throws(CrashError) in
            let summary = CutSummary(images)
            emit("\(summary.label): \(images.count.images), \(summary.enumerationWording)\n")
            for line in images.lines {
                emit("  line \(hex(line.address)): \(Self.choicesWording(line)); \(line.count == .max ? "over 2^64" : String(line.count)) contents\n")
            }
            var cursor = ImageCursor(images)
            var shown: UInt64 = 0
            while cursor.next() && shown < limit {
                shown += 1
                let outcome = Self.outcome(images, cursor.values)
                var text = "  image \(cursor.index)\(cursor.covered ? " (already an image of the cut before)" : ""): "
                if outcome.isEmpty {
                    text += "every write persisted"
                } else {
                    text += outcome.map { line in
                        let kept = line.persisted.map { "#\($0.seq)" }
                        let lost = line.lost.map { "#\($0.seq)" }
                        return "\(hex(line.address)) kept {\(kept.joined(separator: " "))} lost {\(lost.joined(separator: " "))}"
                    }.joined(separator: "; ")
                }
                emit(text + "\n")
            }
        }
    }

    static func choicesWording(_ line: VariableLine) -> String {
        let cached = line.writes.filter { !$0.nonTemporal && $0.cachedIndex > line.guaranteed }.map { "#\($0.seq)" }
        let nt = line.writes.filter { $0.nonTemporal && !$0.ntGuaranteed }.map { "#\($0.seq)" }
        var parts: [String] = []
        if !cached.isEmpty { parts.append("any prefix of cached \(cached.joined(separator: " "))") }
        if !nt.isEmpty { parts.append("any subset of non-temporal \(nt.joined(separator: " "))") }
        return parts.joined(separator: ", ")
    }

    /// Per line off its newest content: which at-risk writes the image keeps and loses.
    static func outcome(_ images: CutImages, _ values: [Int]) -> [LineOutcome] {
        var out: [LineOutcome] = []
        for line in images.lines {
            guard line.digits.contains(where: { values[$0] != 0 }) else { continue }
            var prefix = line.cachedTotal
            var lostNT = Set<UInt64>()
            for d in line.digits {
                let choice = images.digits[d].choices[values[d]]
                if let p = choice.prefix { prefix = p }
                let all = Set(images.digits[d].choices[0].nonTemporal)
                lostNT.formUnion(all.subtracting(choice.nonTemporal))
            }
            var persisted: [WriteRef] = [], lost: [WriteRef] = []
            for w in line.writes {
                let ref = WriteRef(seq: w.seq, nonTemporal: w.nonTemporal, address: line.address + UInt64(w.offset),
                                   length: w.length, thread: w.thread, stack: w.stack)
                if w.nonTemporal {
                    if w.ntGuaranteed { continue }
                    if lostNT.contains(w.seq) { lost.append(ref) } else { persisted.append(ref) }
                } else {
                    if w.cachedIndex <= line.guaranteed { continue }
                    if w.cachedIndex <= prefix { persisted.append(ref) } else { lost.append(ref) }
                }
            }
            out.append(LineOutcome(address: line.address, persisted: persisted, lost: lost))
        }
        return out
    }

    /// Checks every planned image with the checker. `progress(done, total)` as it goes.
    public func check(_ checker: CheckerSpec, progress: @escaping (Int64, Int64) -> Void = { _, _ in }) throws -> CrashOutcome {
        // First pass: counts, and bad input found before any checker runs.
        let counted = try count()
        let total = counted.cuts.reduce(Int64(0)) { $0 + Int64($1.planned - $1.repeated) }
        var outcome = CrashOutcome(trace: path, ranges: counted.ranges, cuts: [], reported: [])
        var workers: ImageChecks?
        var batch: [CutImages] = []
        var batchImages: UInt64 = 0
        var batchLines = 0
        var mirror: [UInt64: LineImage] = [:]
        var done: Int64 = 0
        var saveDirectory = options.saveDirectory
        var saved = 0

        func flush(_ layout: ImageLayout) throws(CrashError) {
            guard !batch.isEmpty else { return }
            if workers == nil {
                workers = try ImageChecks(layout: layout, checker: checker, jobs: options.jobs, timeout: options.timeout)
            }
            let before = Array(mirror.values)
            let base = done
            let (results, checked) = try workers!.check(batch, mirror: before) { n in progress(base + n, total) }
            done += checked
            outcome.checked += checked
            // Place each result in its cut.
            var starts: [Int64] = []
            var s: Int64 = 0
            for images in batch { starts.append(s); s += Int64(images.planned) }
            for r in results {
                switch r.verdict {
                case .skipped: outcome.skipped += 1
                case .inconsistent: outcome.inconsistent += 1
                case .crashed: outcome.crashed += 1
                case .timedOut: outcome.timedOut += 1
                case .consistent: break
                }
                guard r.verdict.isFailure, options.reportAll || outcome.reported.isEmpty else { continue }
                let c = (starts.lastIndex { $0 <= r.ordinal })!
                let images = batch[c]
                var cursor = ImageCursor(images)
                while cursor.index < r.ordinal - starts[c] && cursor.next() {}
                var summary = CutSummary(images)
                summary.repeated = 0
                var reported = ReportedImage(cut: summary, index: cursor.index, verdict: r.verdict, output: r.output,
                                             lines: Self.outcome(images, cursor.values), savedPath: nil)
                if saveDirectory == nil { saveDirectory = try Self.makeTemporaryFolder() }
                reported.savedPath = try Self.save(layout: layout, mirror: before, batch: Array(batch[...c]),
                                                   values: cursor.values, into: saveDirectory!,
                                                   name: "cut\(images.cut)-image\(cursor.index)")
                saved += 1
                outcome.reported.append(reported)
            }
            for images in batch { for line in images.resets { mirror[line.address] = line } }
            batch.removeAll()
            batchImages = 0
            batchLines = 0
        }

        var cutIndex = 0
        let layout = try replay { images, layout throws(CrashError) in
            var summary = CutSummary(images)
            guard cutIndex < counted.cuts.count, counted.cuts[cutIndex].cut == images.cut else {
                throw CrashError(.system, "the second replay took cut \(images.cut), which the first did not")
            }
            summary.repeated = counted.cuts[cutIndex].repeated
            cutIndex += 1
            outcome.cuts.append(summary)
            batch.append(images)
            batchImages += images.planned
            batchLines += images.resets.count + images.lines.count
            if batchImages >= 200_000 || batch.count >= 1024 || batchLines >= 100_000 { try flush(layout) }
        }
        try flush(layout)
        outcome.savedDirectory = saved > 0 ? saveDirectory : nil
        return outcome
    }

    static func makeTemporaryFolder() throws(CrashError) -> String {
        let root = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((root + "/powercut-images-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CrashError(.system, "cannot create a folder for failing images in \(root): \(errnoText())")
        }
        return String(cString: made)
    }

    /// Writes one image: the file (one range) or a folder of files (several), each
    /// written to a new temporary file, synced, and renamed into place.
    static func save(layout: ImageLayout, mirror: [LineImage], batch: [CutImages], values: [Int], into folder: String,
                     name: String) throws(CrashError) -> String {
        if mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw CrashError(.usage, "--save-images \(quoted(folder)): cannot create: \(errnoText())")
        }
        let memory = try ImageMemory(layout: layout)
        for line in mirror { memory.write(line) }
        for images in batch { memory.begin(images) }
        let images = batch[batch.count - 1]
        for (d, v) in values.enumerated() where v != 0 { memory.write(images.digits[d], v) }
        let single = images.ranges.count == 1
        let target = single ? folder + "/" + name + ".img" : folder + "/" + name
        if !single && mkdir(target, 0o755) != 0 && errno != EEXIST {
            throw CrashError(.system, "cannot create \(target): \(errnoText())")
        }
        for i in images.ranges {
            let path = single ? target : target + "/" + layout.ranges[i].fileName
            try writeFile(path, memory.regions[i])
        }
        return target
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let words = bytes.count / 8
        let w = bytes.baseAddress!.assumingMemoryBound(to: UInt64.self)   // page-aligned regions
        var any: UInt64 = 0
        for i in 0..<words { any |= w[i] }
        for i in (words * 8)..<bytes.count { any |= UInt64(bytes[i]) }
        return any == 0
    }

    static func writeFile(_ path: String, _ bytes: UnsafeMutableRawBufferPointer) throws(CrashError) {
        let temporary = path + ".incomplete"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CrashError(.system, "cannot create \(temporary): \(errnoText())") }
        // Chunks of zeros become holes: a saved image of a large, mostly empty pool
        // takes the disk its data takes, not its length.
        let chunk = 1 << 16
        var done = 0
        while done < bytes.count {
            let length = min(bytes.count - done, chunk)
            let start = bytes.baseAddress! + done
            if Self.isZero(UnsafeRawBufferPointer(start: start, count: length)) { done += length; continue }
            let n = pwrite(fd, start, length, off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                unlink(temporary)
                throw CrashError(.system, "cannot write \(temporary): \(errnoText())")
            }
            done += n
        }
        guard ftruncate(fd, off_t(bytes.count)) == 0 else {
            close(fd)
            unlink(temporary)
            throw CrashError(.system, "cannot size \(temporary): \(errnoText())")
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CrashError(.system, "cannot save \(path): \(errnoText())")
        }
    }
}
