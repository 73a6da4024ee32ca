import Foundation

/// Shared libraries of routines that misbehave, compiled with the system C compiler
/// into a scratch directory once per test process.
enum MisbehavingRoutines {
    static let routines = """
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        static int *volatile null_pointer;
        void segv(void *d, const void *s, size_t n) { *(volatile int *)null_pointer = 1; }
        void aborts(void *d, const void *s, size_t n) { abort(); }
        static int deep(int x) { volatile char buf[4096]; buf[0] = (char)x; return deep(x + 1) + buf[0]; }
        void overflow(void *d, const void *s, size_t n) { deep(1); }
        void ud2(void *d, const void *s, size_t n) { __builtin_trap(); }
        void exits0(void *d, const void *s, size_t n) { exit(0); }
        void exits3(void *d, const void *s, size_t n) { _exit(3); }
        void ignores_sigtrap(void *d, const void *s, size_t n) { signal(SIGTRAP, SIG_IGN); memcpy(d, s, n); }
        void blocks_sigtrap(void *d, const void *s, size_t n) {
            sigset_t m;
            sigemptyset(&m);
            sigaddset(&m, SIGTRAP);
            sigprocmask(SIG_BLOCK, &m, 0);
            memcpy(d, s, n);
        }
        void sleeps(void *d, const void *s, size_t n) { sleep(100); }
        void prints(void *d, const void *s, size_t n) { printf("hello from the routine\\n"); memcpy(d, s, n); }
        /* cached copies (no write-back) that crash at size 5 */
        void crashes_at_5(void *d, const void *s, size_t n) {
            if (n == 5) *(volatile int *)null_pointer = 1;
            memcpy(d, s, n);
        }
        /* a routine of another signature, and the harness entry point that adapts it */
        size_t copy_with_flags(void *d, const void *s, size_t n, unsigned flags) { memcpy(d, s, n); return flags ? 0 : n; }
        void powercut_case(void *d, const void *s, size_t n) { (void)copy_with_flags(d, s, n, 0); }
        void aborts_at_5(void *d, const void *s, size_t n) {
            if (n == 5) abort();
            memcpy(d, s, n);
        }
        """
    static let constructorExits = """
        #include <stdlib.h>
        #include <string.h>
        __attribute__((constructor)) static void bye(void) { exit(0); }
        void copy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
        """
    static let constructorCrashes = """
        #include <string.h>
        static int *volatile null_pointer;
        __attribute__((constructor)) static void boom(void) { *(volatile int *)null_pointer = 1; }
        void copy(void *d, const void *s, size_t n) { memcpy(d, s, n); }
        """

    static let directory: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-misbehaving-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// The path of the built library `name` (routines, constructorExits, constructorCrashes).
    static func library(_ name: String) throws -> String {
        let source = ["routines": routines, "constructorExits": constructorExits, "constructorCrashes": constructorCrashes][name]!
        let lib = "\(directory)/lib\(name).so"
        if FileManager.default.fileExists(atPath: lib) { return lib }
        let c = "\(directory)/\(name)-\(UUID().uuidString).c"
        try source.write(toFile: c, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let tmp = lib + ".\(UUID().uuidString)"
        p.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", tmp, c]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        _ = rename(tmp, lib)
        return lib
    }
}
