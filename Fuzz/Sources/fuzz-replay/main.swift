// The fuzz target ReplayTarget (in PowercutFuzzing), driven by libFuzzer.
import PowercutFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ReplayTarget.run(FuzzInput(data, size))
}

runFuzzer(fuzzOneInput)
