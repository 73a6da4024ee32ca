import Foundation

/// The output directory and the copy of the tree: made, filled and checked without ever
/// writing into the tree.
extension KernelLift {

    /// The output directory, created, or emptied when a previous lift made it. Never
    /// inside the tree, never containing it.
    static func prepareOutput(_ output: String, tree: String) throws(KernelLiftError) -> (path: String, created: Bool) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        var created = false
        let out = URL(fileURLWithPath: output).standardizedFileURL
        if fm.fileExists(atPath: out.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw KernelLiftError(.usage, "-o \(quoted(output)): exists and is not a directory") }
        } else {
            // Check the parent first: the directory must not be created inside the tree.
            let parent = out.deletingLastPathComponent().resolvingSymlinksInPath().path
            if isInside(parent + "/" + out.lastPathComponent, tree) {
                throw KernelLiftError(.usage, "-o \(quoted(output)) is inside the tree; kernel-lift never writes into the tree (give -o a directory outside it)")
            }
            do { try fm.createDirectory(at: out, withIntermediateDirectories: true) } catch {
                throw KernelLiftError(.usage, "-o \(quoted(output)): cannot create it (\(error.localizedDescription))")
            }
            created = true
        }
        let real = out.resolvingSymlinksInPath().path
        if isInside(real, tree) { throw KernelLiftError(.usage, "-o \(quoted(output)) is inside the tree; kernel-lift never writes into the tree (give -o a directory outside it)") }
        if isInside(tree, real) { throw KernelLiftError(.usage, "-o \(quoted(output)) contains the tree; choose a directory outside it") }
        let entries = (try? fm.contentsOfDirectory(atPath: real)) ?? []
        if !entries.isEmpty {
            guard entries.contains(marker) else {
                throw KernelLiftError(.usage, "-o \(quoted(output)): not empty and not made by kernel-lift; choose a new or empty directory")
            }
            for e in entries { try? fm.removeItem(atPath: real + "/" + e) }
        }
        try write("powercut kernel-lift output; the whole directory is replaced by the next lift into it\n", to: real + "/" + marker)
        return (real, created)
    }

    static func isInside(_ path: String, _ dir: String) -> Bool {
        path == dir || path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/")
    }

    static func copyOut(_ rel: String, from tree: String, to copy: String) throws(KernelLiftError) {
        let fm = FileManager.default
        let src = tree + "/" + rel, dst = copy + "/" + rel
        guard fm.fileExists(atPath: src), !fm.fileExists(atPath: dst) else { return }
        let text = try readFile(src, what: rel)
        try makeDirectory((dst as NSString).deletingLastPathComponent)
        try write(text, to: dst)
    }

    static func readFile(_ path: String, what: String) throws(KernelLiftError) -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attrs?[.size] as? NSNumber, size.intValue > maxFileSize {
            throw KernelLiftError(.layout, "\(quoted(path)): \(size.intValue) bytes; a kernel source file kernel-lift reads is under \(maxFileSize >> 20) MiB")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KernelLiftError(.layout, "\(quoted(path)): cannot read \(what)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw KernelLiftError(.layout, "\(quoted(path)): not UTF-8 text (\(what))")
        }
        return text
    }

    static func write(_ text: String, to path: String) throws(KernelLiftError) {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw KernelLiftError(.environment, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    static func makeDirectory(_ path: String) throws(KernelLiftError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw KernelLiftError(.environment, "cannot create \(path): \(error.localizedDescription)")
        }
    }

    /// The tree-relative files a unified diff touches (-p1: the first component dropped).
    static func patchTargets(_ text: String) -> [String] {
        var out: [String] = []
        for line in text.split(separator: "\n") where line.hasPrefix("+++ ") || line.hasPrefix("--- ") {
            let name = line.dropFirst(4).prefix { $0 != "\t" && $0 != " " }
            guard name != "/dev/null", let slash = name.firstIndex(of: "/") else { continue }
            let rel = String(name[name.index(after: slash)...])
            if validIncludePath(rel) && !out.contains(rel) { out.append(rel) }
        }
        return out
    }

    /// A relative path of ordinary names: no "..", not absolute, no odd bytes.
    static func validIncludePath(_ p: String) -> Bool {
        guard !p.isEmpty, !p.hasPrefix("/"), p.utf8.count < 256 else { return false }
        let ok = p.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_-./+".unicodeScalars.contains($0) }
        return ok && !p.split(separator: "/").contains { $0 == ".." || $0 == "." }
    }
}
