import CPowercutRecorder
import CPowercutSubjects
import Glibc

/// A copy routine `void f(void *dst, const void *src, size_t n)` to record: one of the
/// reference subjects built into powercut, or any exported symbol of a shared library.
/// A harness library exports `powercut_case` with that signature and adapts whatever
/// it tests (a routine with flags, one that returns a count, a log append) to it.
public enum Routine: Sendable, Equatable, CustomStringConvertible {
    case subject(String)
    case library(path: String, symbol: String)

    /// The entry point a harness library exports: `void powercut_case(void *dst, const
    /// void *src, size_t n)`, called once per case.
    public static let harnessEntry = "powercut_case"

    /// A harness library's routine.
    public static func harness(_ path: String) -> Routine { .library(path: path, symbol: harnessEntry) }

    public var description: String {
        switch self {
        case .subject(let name): return name
        case .library(let path, let symbol):
            guard symbol == Self.harnessEntry else { return symbol }
            // Named after the library: libpmcopy-case.so -> pmcopy-case.
            var name = path.split(separator: "/").last.map(String.init) ?? path
            if name.hasPrefix("lib") { name.removeFirst(3) }
            if let dot = name.firstIndex(of: "."), name[dot...].hasPrefix(".so") { name = String(name[..<dot]) }
            return name.isEmpty ? symbol : name
        }
    }

    /// The reference subjects: name and one-line summary.
    public static var subjects: [(name: String, summary: String)] {
        (0..<powercut_subject_count()).map {
            (String(cString: powercut_subject_name($0)), String(cString: powercut_subject_summary($0)))
        }
    }

    /// The write-back instruction the subjects use on this machine (CPUID, or
    /// POWERCUT_WRITEBACK).
    public static var subjectWriteBack: String { String(cString: powercut_subject_writeback_name()) }

    /// The function to call. Loading a library runs its constructors (libpmem reads its
    /// PMEM_* environment variables then).
    public func resolve() throws(RecorderError) -> pc_fn3 {
        switch self {
        case .subject(let name):
            for i in 0..<powercut_subject_count() where String(cString: powercut_subject_name(i)) == name {
                return unsafeBitCast(powercut_subject_function(i), to: pc_fn3.self)
            }
            let known = Self.subjects.map(\.name).joined(separator: ", ")
            throw RecorderError(.routine, "no built-in subject '\(name)' (expected one of: \(known); or --lib PATH --symbol NAME)")
        case .library(let path, let symbol):
            _ = dlerror()
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
                let why = dlerror().map { String(cString: $0) } ?? "unknown error"
                throw RecorderError(.routine, "cannot load \(path): \(why) (give a path to a shared library, or a name the dynamic loader finds)")
            }
            _ = dlerror()
            guard let f = dlsym(handle, symbol) else {
                throw RecorderError(.routine, "\(path) has no symbol '\(symbol)' (list its exported functions with: nm -D --defined-only \(path))")
            }
            return unsafeBitCast(f, to: pc_fn3.self)
        }
    }
}
