import Glibc
import Testing
@testable import PowercutTrace

/// The temporary output files in a directory.
func temporaries(in dir: String) -> [String] {
    guard let d = opendir(dir) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let entry = readdir(d) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name.hasSuffix(".incomplete") { names.append(name) }
    }
    return names
}

@Suite struct OutputFileTests {
    @Test func crashSafeOutputLeavesNoPartialFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("out.pct")
        do {
            let f = try OutputFile(path: path)
            try f.write("powercut-trace 1\n")
            try f.flush()
            #expect(access(path, F_OK) != 0, "the real name appears only at commit")
            let temps = temporaries(in: dir.path)
            #expect(temps.count == 1 && temps[0].hasPrefix("out.pct."), "got \(temps)")
        }
        #expect(temporaries(in: dir.path).isEmpty, "an abandoned output is removed")
        #expect(access(path, F_OK) != 0)
    }

    @Test func aSymlinkPlantedAtTheTemporaryNameIsNotFollowed() throws {
        let dir = TemporaryDirectory()
        let victim = dir.file("victim"), path = dir.file("out.txt")
        try OutputFile.write("precious\n", to: victim)
        // Someone who can write the directory plants a link where the temporary file
        // would go (and, to be sure, at the old fixed name too).
        var names = ["planted"]
        let planted = "\(path).\(getpid())-planted.incomplete"
        #expect(symlink(victim, planted) == 0)
        #expect(symlink(victim, path + ".incomplete") == 0)
        let f = try OutputFile(path: path, uniqueNames: { names.isEmpty ? "second" : names.removeFirst() })
        try f.write("report\n")
        try f.commit()
        #expect(String(decoding: contents(victim), as: UTF8.self) == "precious\n", "the link's target was overwritten")
        #expect(String(decoding: contents(path), as: UTF8.self) == "report\n")
        var st = stat()
        #expect(lstat(planted, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, "someone else's file is left alone")
    }

    @Test func aFailedWriteRemovesItsTemporaryFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("out.pctb")
        // A trace the binary form cannot hold: the writer refuses it before commit.
        var t = Trace()
        t.header.records = [.meta(key: "bad key", value: "v")]
        #expect(throws: TraceError.self) { try t.write(to: path, form: .binary) }
        #expect(temporaries(in: dir.path).isEmpty)
        #expect(access(path, F_OK) != 0)
    }

    @Test func anOutputInAMissingDirectoryIsOneClearError() {
        let e = #expect(throws: TraceError.self) { _ = try OutputFile(path: "/nonexistent-dir/out.pct") }
        #expect(e?.description.contains("cannot create output") == true)
    }
}
