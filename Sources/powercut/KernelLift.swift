import ArgumentParser
import Foundation
import PowercutKernelLift

extension FlushInstruction: ExpressibleByArgument {}

struct KernelLiftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel-lift",
        abstract: "Build a Linux tree's own flushcache code into a library the sweep can call.",
        discussion: """
            Copies arch/x86/lib/usercopy_64.c and the non-temporal copy core (copy_user_64.S, or \
            copy_user_uncached_64.S from the 2023 rewrite on) out of the tree — never writing into \
            it —, applies the patches to the copy (patch -p1), writes the shims (empty stub headers, \
            a C and an assembler prelude, exported wrappers) and builds a shared library with cc. \
            Prints which code is the tree's and which the shim's, and the sweep commands to run. \
            Layouts are told apart by what the files contain, not by version numbers. \
            Exit status: 0 built, 64 usage, 65 a tree, patch or file it cannot lift (one line naming \
            it), 70 a missing tool or internal error.
            """
    )

    @Option(help: "The Linux source tree (read only).")
    var tree: String

    @Option(name: .customLong("patch"), help: "A patch to apply to the copy with patch -p1 (repeatable, applied in order).")
    var patches: [String] = []

    @Option(help: "The instruction the tree's clwb() executes: clwb, clflushopt or clflush (default: the CPU's best; POWERCUT_WRITEBACK overrides).")
    var flush: FlushInstruction?

    @Option(name: [.short, .customLong("output")], help: "The directory to build in (created; replaced if a previous lift made it).")
    var output = "kernel-lift"

    func run() throws {
        try reporting {
            let lifted = try liftKernel(tree: tree, patches: patches, flush: flush, output: output)
            var text = lifted.report
            text += "  sweep with:\n"
            for c in lifted.sweepCommands { text += "    \(c)\n" }
            text += "  or lift and sweep in one step: powercut sweep --kernel-tree \(tree)"
            for p in patches { text += " --patch \(p)" }
            text += "\n"
            writeAll(1, text)
        }
    }
}

/// Lifts a tree, its errors turned into the command line's one-line failures.
func liftKernel(tree: String, patches: [String], flush: FlushInstruction?, output: String) throws -> LiftedKernel {
    do {
        return try KernelLift.lift(KernelLiftRequest(tree: tree, patches: patches, flush: flush ?? KernelLift.defaultFlush, output: output))
    } catch {
        throw Failure(message: error.description, status: error.exitStatus)
    }
}

/// A lift for `sweep --kernel-tree`: built in a fresh temporary directory that the
/// caller removes when the sweep is done.
func liftKernelForSweep(tree: String, patches: [String], flush: FlushInstruction?) throws -> LiftedKernel {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-kernel-lift-\(getpid())-\(UUID().uuidString)").path
    return try liftKernel(tree: tree, patches: patches, flush: flush, output: dir)
}
