import PowercutTrace

#if canImport(Glibc)
import Glibc
#endif

/// Target `roundtrip`: the two forms hold the same traces. For every text input the
/// reader accepts, with T its canonical text (`Trace.text`):
///
/// - the binary writer writes it (a text trace the binary form cannot hold is a
///   failure: `convert` promises no loss);
/// - the binary reader reads that file back, and its canonical text is T, byte for byte;
/// - the text reader reads T back, and its canonical text is T again (the canonical
///   form is a fixed point).
///
/// Any difference aborts with the first differing line of each side.
///
/// With POWERCUT_FUZZ_BINARY_SEEDS=DIR set, the binary form of each accepted input is
/// also kept in DIR (named by the input's hash): `Tools/fuzz` runs the seed traces
/// through this target once that way to make the binary reader's seeds.
public enum RoundTripTarget {
    public static func run(_ input: FuzzInput) -> Int32 {
        if input.isBinary { return -1 }
        guard let trace = readTrace(input.bytes) else { return 0 }
        let canonical = trace.text

        let keep = getenv("POWERCUT_FUZZ_BINARY_SEEDS").map { String(cString: $0) }
        let path = keep.map { "\($0)/\(String(input.hash, radix: 16)).pctb" } ?? scratchPath("roundtrip.pctb")
        defer { if keep == nil { unlink(path) } }
        do throws(TraceError) {
            try trace.write(to: path, form: .binary)
        } catch {
            if error.kind == .io { fuzzFailure("cannot write the scratch file \(path): \(error)") }
            checkFailed(.roundTrip, "the text reader accepted a trace the binary writer refuses: \(error)")
            return 0
        }
        let binary: Trace
        do {
            binary = try Trace(contentsOf: path)
        } catch {
            checkFailed(.roundTrip, "the binary reader rejects what the binary writer wrote: \(error)")
            return 0
        }
        compare(canonical, binary.text, "text -> binary -> text", check: .roundTrip)

        switch tryReadTrace(Array(canonical.utf8)) {
        case .success(let again):
            compare(canonical, again.text, "text -> canonical text -> text", check: .roundTrip)
        case .failure(let error):
            checkFailed(.roundTrip, "the text reader rejects the canonical text of a trace it accepted (\(error)):\n\(escapedPrefix(canonical, max: 4000))")
        }
        return 0
    }

    static func compare(_ expected: String, _ actual: String, _ what: String, check: FuzzCheck) {
        guard expected != actual else { return }
        let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let b = actual.split(separator: "\n", omittingEmptySubsequences: false)
        let i = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        let left = i < a.count ? escapedPrefix(String(a[i])) : "(end of text)"
        let right = i < b.count ? escapedPrefix(String(b[i])) : "(end of text)"
        checkFailed(check, "round trip \(what) differs at line \(i + 1):\n  canonical: \(left)\n  after:     \(right)")
    }
}
