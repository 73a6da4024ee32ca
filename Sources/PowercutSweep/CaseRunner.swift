import Glibc
import PowercutModel
import PowercutRecorder
import PowercutTrace

/// Records and replays sweep cases in this process: what a worker runs. The verdict is
/// the replayer's verdict on the recorded trace, nothing shortcut.
public final class CaseRunner {
    public let routine: Routine
    public let harness: Harness
    public var options: Harness.Options
    public var replay: ReplayOptions
    /// Where to write each failing case's trace (nil: nowhere).
    public var saveFailing: String?

    public init(routine: Routine, grid: SweepGrid, options: Harness.Options, replay: ReplayOptions,
                saveFailing: String? = nil) throws(RecorderError) {
        self.routine = routine
        let maxOffset = Int((grid.dstOffsets.max() ?? 0) + 1) + Int(grid.srcOffsets.max() ?? 0)
        harness = try Harness(routine: routine, maxLength: Int(grid.sizes.max() ?? 0), maxOffset: maxOffset)
        self.options = options
        // Every range of a case listed (the default grid's largest copy has about a
        // thousand); totals come from the model's counts whatever is listed.
        var replay = replay
        replay.maxRangesPerFinding = max(replay.maxRangesPerFinding, 4096)
        self.replay = replay
        self.saveFailing = saveFailing
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Where `--save-failing DIR` puts a failing case's trace.
    public static func savedTracePath(dir: String, routine: String, case c: SweepCase) -> String {
        "\(dir)/\(routine)-dst\(c.dstOffset)-src\(c.srcOffset)-n\(c.size).pct"
    }

    public func run(_ c: SweepCase) -> CaseResult {
        var result = CaseResult(case: c, status: .clean)
        let t0 = Self.now()
        let before = Recorder.shared.instructionsStepped
        let trace: Trace
        do {
            trace = try harness.record(dstOffset: Int(c.dstOffset), srcOffset: Int(c.srcOffset), length: Int(c.size),
                                       options: options, modules: saveFailing != nil)
        } catch {
            result.status = error.cause == .budget ? .budget : .error
            result.message = error.description
            result.instructions = Recorder.shared.instructionsStepped - before
            result.recordSeconds = Self.now() - t0
            return result
        }
        let t1 = Self.now()
        result.instructions = Recorder.shared.instructionsStepped - before
        result.recordSeconds = t1 - t0
        result.judge(Replayer.replay(trace, options: replay))
        result.replaySeconds = Self.now() - t1
        if result.status == .failing, let dir = saveFailing {
            let path = Self.savedTracePath(dir: dir, routine: routine.description, case: c)
            do { try trace.write(to: path, form: .text) } catch { result.message = "could not save trace: \(error)" }
        }
        return result
    }
}
