/// The exported wrappers: each has the sweep's signature
/// `void f(void *dst, const void *src, size_t n)` and calls one routine of the tree.
public struct LiftedRoutine: Sendable, Equatable {
    /// The exported symbol.
    public var symbol: String
    /// The tree's function it calls.
    public var treeFunction: String
    /// What it is, in a line.
    public var summary: String
    /// Whether a flushcache sweep applies to it (the core alone leaves its cached head
    /// and tail for its caller to write back, so it is exported but not swept).
    public var sweptByDefault: Bool
}

enum Wrappers {
    static func routines(for layout: TreeLayout) -> [LiftedRoutine] {
        var r: [LiftedRoutine] = []
        if let wb = layout.writeBack {
            r.append(LiftedRoutine(symbol: "lifted_copy_user_flushcache", treeFunction: wb,
                                   summary: "the tree's write-back wrapper: \(layout.core), then the write-backs it decides on", sweptByDefault: true))
        }
        if let m = layout.memcpyFlushcache {
            r.append(LiftedRoutine(symbol: "lifted_memcpy_flushcache", treeFunction: m,
                                   summary: "the tree's in-kernel flushcache copy (the out-of-line routine; constant-size fast paths live in a header and are not lifted)",
                                   sweptByDefault: true))
        }
        let coreSymbol = "lifted_" + layout.core.drop { $0 == "_" }
        r.append(LiftedRoutine(symbol: String(coreSymbol), treeFunction: layout.core,
                               summary: "the tree's non-temporal core alone, \(layout.coreArguments) arguments (no write-back: not a flushcache routine by itself)",
                               sweptByDefault: false))
        return r
    }

    static func source(for layout: TreeLayout) -> String {
        var s = """
        /* powercut kernel-lift: exported wrappers. This is the SHIM, not the tree's code.
         * Each has the sweep's signature and calls one routine of the tree. */
        typedef __SIZE_TYPE__ size_t;
        #define LIFTED __attribute__((__visibility__("default"), __noinline__))

        """
        for r in routines(for: layout) {
            switch r.treeFunction {
            case layout.writeBack:
                s += "long \(r.treeFunction)(void *dst, const void *src, unsigned size);\n"
                s += "LIFTED void \(r.symbol)(void *dst, const void *src, size_t n) { \(r.treeFunction)(dst, src, (unsigned)n); }\n"
            case layout.memcpyFlushcache:
                s += "void \(r.treeFunction)(void *dst, const void *src, size_t n);\n"
                s += "LIFTED void \(r.symbol)(void *dst, const void *src, size_t n) { \(r.treeFunction)(dst, src, n); }\n"
            default:
                if layout.coreArguments == 4 {
                    s += "long \(r.treeFunction)(void *dst, const void *src, unsigned size, int zerorest);\n"
                    s += "LIFTED void \(r.symbol)(void *dst, const void *src, size_t n) { \(r.treeFunction)(dst, src, (unsigned)n, 0); }\n"
                } else {
                    s += "long \(r.treeFunction)(void *dst, const void *src, unsigned size);\n"
                    s += "LIFTED void \(r.symbol)(void *dst, const void *src, size_t n) { \(r.treeFunction)(dst, src, (unsigned)n); }\n"
                }
            }
        }
        return s
    }
}

/// Definitions for symbols the lifted files call but do not define.
enum Runtime {
    /// The C library routines a compiler may call on its own, given real bodies.
    static let libraryRoutines: [String: String] = [
        "memcpy": "\tmovq %rdi, %rax\n\tmovq %rdx, %rcx\n\trep movsb\n\tret\n",
        "memset": "\tmovq %rdi, %r9\n\tmovl %esi, %eax\n\tmovq %rdx, %rcx\n\trep stosb\n\tmovq %r9, %rax\n\tret\n",
    ]

    /// Assembler defining each symbol: library routines for real, anything else as a
    /// trap (ud2), so that a path the lift cannot run stops loudly if ever taken.
    static func source(for symbols: [String]) -> String {
        var s = "/* powercut kernel-lift: definitions for symbols the lifted files use but do not define.\n"
        s += " * This is the SHIM. Any routine below that is ud2 traps if called: only fault paths call them. */\n"
        s += "\t.text\n"
        for sym in symbols {
            s += "\t.globl \(sym)\n\t.hidden \(sym)\n\t.type \(sym), @function\n\(sym):\n"
            s += libraryRoutines[sym] ?? "\tud2\n"
            s += "\t.size \(sym), . - \(sym)\n"
        }
        s += "\t.section .note.GNU-stack,\"\",@progbits\n"
        return s
    }
}
