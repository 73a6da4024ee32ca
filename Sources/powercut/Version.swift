import PowercutTrace
#if canImport(Glibc)
import Glibc
#endif

/// What `powercut --version` says: the release and the commit it was built from (stamped
/// by the VersionStamp build plugin), the trace format versions it reads and writes, and
/// the versions of the decoder and unwinder the recorder runs with, as the
/// process finds them loaded (not as some header once said).
enum PowercutVersion {
    static let release = "0.1.0"

    static var string: String {
        "\(release) (commit \(buildCommit); trace format: text \(TraceVersion.text), binary \(TraceVersion.binary); "
            + "capstone \(capstone ?? "not loaded"); libunwind \(libunwind ?? "not loaded"))"
    }

    /// capstone's own answer (`cs_version`), e.g. "4.0".
    static var capstone: String? {
        typealias Version = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> UInt32
        guard let f = dlsym(nil, "cs_version") else { return nil }   // nil: RTLD_DEFAULT
        var major: Int32 = 0, minor: Int32 = 0
        _ = unsafeBitCast(f, to: Version.self)(&major, &minor)
        return "\(major).\(minor)"
    }

    /// libunwind has no version call: the file the process loaded it from, with its
    /// version suffix (`libunwind-x86_64.so.8.0.1`).
    static var libunwind: String? {
        typealias DlAddr = @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>) -> Int32
        guard let dladdr = dlsym(nil, "dladdr"), let symbol = dlsym(nil, "_ULx86_64_init_local") else { return nil }
        var info = [UnsafeRawPointer?](repeating: nil, count: 4)   // fname, fbase, sname, saddr
        guard info.withUnsafeMutableBufferPointer({ unsafeBitCast(dladdr, to: DlAddr.self)(symbol, $0.baseAddress!) }) != 0,
              let name = info[0] else { return nil }
        let path = String(cString: name.assumingMemoryBound(to: CChar.self))
        guard let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(String(cString: real).split(separator: "/").last ?? "")
    }
}
