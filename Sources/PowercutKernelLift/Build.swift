import Foundation

/// Compiling and linking the lift with cc, and reading symbols with nm.
extension KernelLift {
    static func objectName(_ rel: String) -> String {
        ((rel as NSString).lastPathComponent as NSString).deletingPathExtension + ".o"
    }

    static func compile(_ arguments: [String], what: String) throws(KernelLiftError) {
        let r = try Tool.run("cc", arguments)
        guard r.status == 0 else {
            throw KernelLiftError(.layout, "cc cannot build \(what) with the kernel-lift shims: \(Tool.firstError(r.output))")
        }
    }

    /// Symbols the objects use and none of them defines.
    static func undefinedSymbols(_ objects: [String]) throws(KernelLiftError) -> [String] {
        let u = try Tool.run("nm", ["-u"] + objects)
        let d = try Tool.run("nm", ["-g", "--defined-only"] + objects)
        guard u.status == 0, d.status == 0 else { throw KernelLiftError(.environment, "nm failed: \(Tool.firstError(u.output + d.output))") }
        func names(_ output: String, _ keep: (Substring) -> Bool) -> Set<String> {
            Set(output.split(separator: "\n").compactMap { line -> String? in
                let f = line.split(separator: " ")
                guard f.count >= 2, keep(f[f.count - 2]) else { return nil }
                return String(f[f.count - 1])
            })
        }
        let undefined = names(u.output) { $0 == "U" }
        let defined = names(d.output) { _ in true }
        return undefined.subtracting(defined).filter { !$0.hasPrefix("_GLOBAL_OFFSET_TABLE_") }.sorted()
    }

    static func definedDynamicSymbols(_ library: String) throws(KernelLiftError) -> Set<String> {
        let r = try Tool.run("nm", ["-D", "--defined-only", library])
        guard r.status == 0 else { throw KernelLiftError(.environment, "nm cannot read \(library): \(Tool.firstError(r.output))") }
        return Set(r.output.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) })
    }
}
