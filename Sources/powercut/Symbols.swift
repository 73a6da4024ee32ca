import ArgumentParser
import PowercutSymbolize

/// Options of the commands that print stacks.
struct SymbolOptions: ParsableArguments {
    @Flag(name: .customLong("no-symbols"), help: "Print frames as module+offset, without reading any binary.")
    var noSymbols = false

    @Option(name: .customLong("binaries"), help: ArgumentHelp("Also look for the trace's modules, by file name, in DIR (repeatable).", valueName: "DIR"))
    var binaries: [String] = []

    /// The one resolution path every output uses, over the debug info unless --no-symbols.
    func resolver() -> FrameResolver {
        if noSymbols { return FrameResolver() }
        return FrameResolver(DebugInfoSymbolizer(options: .init(searchDirectories: binaries)))
    }

    /// Notes about modules that could not be symbolized, on standard error; stops the
    /// symbolizer's helper processes.
    func finish(_ frames: FrameResolver, notes: Bool = true) {
        if notes { for n in frames.notes { printError("note: " + n) } }
        (frames.symbolizer as? DebugInfoSymbolizer)?.close()
    }
}
