import PowercutTrace

/// A symbolizer that can say more than one line per address (the chain of inlined
/// calls) and knows that a caller's frame is a return address.
public protocol FrameSymbolizer: Symbolizer {
    /// What an address is, innermost (inlined) frame first, e.g.
    /// `["pc_store_tail (primitives.h:40)", "memcpy_flushcache (subjects.c:88)"]`.
    /// A return address (every frame of a stack but the first) is looked up one byte
    /// back, so that it names the call and not the line after it.
    func descriptions(of address: UInt64, isReturnAddress: Bool, modules: [Module]) -> [String]

    /// Looks many addresses up at once. Only a hint: describing works without it.
    func prefetch(_ addresses: [(address: UInt64, isReturnAddress: Bool)], modules: [Module])
}

extension FrameSymbolizer {
    public func prefetch(_ addresses: [(address: UInt64, isReturnAddress: Bool)], modules: [Module]) {}
}

extension Symbolizer {
    /// The lines that describe one frame of a stack: the frame itself and, for a
    /// symbolizer that sees inlining, one more per inlined call (same address).
    public func frameDescriptions(_ address: UInt64, index: Int, modules: [Module]) -> [String] {
        if let s = self as? FrameSymbolizer {
            let d = s.descriptions(of: address, isReturnAddress: index > 0, modules: modules)
            if !d.isEmpty { return d }
        }
        return [describe(address, modules: modules) ?? "???"]
    }

    /// A stack as Valgrind prints it: `at 0x…: function (file.c:88)` for the innermost
    /// frame, `by 0x…: caller (file.c:12)` for the others; an inlined call adds a `by`
    /// line with the same address.
    public func stackText(_ frames: [UInt64], modules: [Module], indent: String) -> String {
        var out = ""
        var first = true
        for (i, ip) in frames.enumerated() {
            for place in frameDescriptions(ip, index: i, modules: modules) {
                out += "\(indent)\(first ? "at" : "by") 0x\(hex(ip)): \(place)\n"
                first = false
            }
        }
        return out
    }

    /// Warms a batching symbolizer with every frame of these stacks.
    public func prefetch(stacks: [[UInt64]], modules: [Module]) {
        guard let s = self as? FrameSymbolizer else { return }
        var seen = Set<UInt64>()
        var wanted: [(address: UInt64, isReturnAddress: Bool)] = []
        for frames in stacks {
            for (i, ip) in frames.enumerated() {
                // Return addresses are keyed one byte back: no clash with a first frame.
                let key = i > 0 ? ip &- 1 : ip
                if seen.insert(key).inserted { wanted.append((ip, i > 0)) }
            }
        }
        if !wanted.isEmpty { s.prefetch(wanted, modules: modules) }
    }
}
