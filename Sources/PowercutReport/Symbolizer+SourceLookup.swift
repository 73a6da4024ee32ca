import PowercutTrace

// The debug-info symbolizer answers the CI printers' question too (Fingerprint+Locations:
// `FrameSourceLookup`), so `FrameResolver(lookup: DebugInfoSymbolizer())` names frames
// by function and line in SARIF, GitHub annotations, JUnit, suppressions and fingerprints.
extension DebugInfoSymbolizer: FrameSourceLookup {
    /// The innermost (inlined) frame of `address`; nil when nothing is known.
    public func source(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> SourcePlace? {
        guard let f = frames(of: address, isReturnAddress: isReturnAddress, modules: modules).first,
              f.function != nil || f.file != nil else { return nil }
        return SourcePlace(function: f.function, file: f.file, line: f.line > 0 ? f.line : nil)
    }
}
