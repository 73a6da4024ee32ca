import CFuzzerDriver

#if canImport(Glibc)
import Glibc
#endif

/// Hands the process to libFuzzer with `target` as the function under test: fuzzing,
/// or running each file named on the command line once (how reproducers are replayed).
/// Takes libFuzzer's flags (`-max_total_time=…`, `-rss_limit_mb=…`, corpus folders).
public func runFuzzer(_ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv, target)
    exit(status)
}
