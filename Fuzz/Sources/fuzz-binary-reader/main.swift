// The fuzz target BinaryReaderTarget (in PowercutFuzzing), driven by libFuzzer.
import PowercutFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    BinaryReaderTarget.run(FuzzInput(data, size))
}

runFuzzer(fuzzOneInput)
