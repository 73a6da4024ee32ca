import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny C subject with functions at known lines, built with debug info into a shared
/// object at test time and loaded into the test process. Running it records a genuine
/// return address, so that tests can symbolize both an entry and a caller's frame.
public struct LoadedCSubject: Sendable {
    public static let source = """
        /* subject.c: a tiny subject for the symbolizer tests. Line numbers matter. */
        static inline __attribute__((always_inline)) void pc_put_byte(volatile char *d, char c)
        {
            *d = c;
        }
        void *pc_last_return;
        __attribute__((noinline)) void pc_known_store(volatile char *d, char c) { pc_last_return = __builtin_return_address(0); pc_put_byte(d, c); }
        __attribute__((noinline)) void pc_known_caller(volatile char *d)
        {
            pc_known_store(d, 1);
            d[2] = 3;
        }
        """
    // The lines above, as the debug info has them.
    public static let putByteLine = 4, storeLine = 7, callLine = 10

    /// The directory holding subject.c and libsubject.so.
    public var directory: String
    /// libsubject.so.
    public var path: String
    /// Where the object's first segment is mapped (dladdr's dli_fbase).
    public var base: UInt64
    /// pc_known_store's entry.
    public var entry: UInt64
    /// The return address into pc_known_caller, recorded by running the subject.
    public var returnAddress: UInt64

    /// Builds and loads the subject once per test process; nil without a C compiler.
    public static let shared: LoadedCSubject? = build()

    private static func build() -> LoadedCSubject? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("powercut-subject-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let c = dir + "/subject.c", so = dir + "/libsubject.so"
        guard (try? source.write(toFile: c, atomically: true, encoding: .utf8)) != nil else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id", "-o", so, c]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        p.waitUntilExit()
        guard p.terminationStatus == 0, let handle = dlopen(so, RTLD_NOW | RTLD_LOCAL),
              let store = dlsym(handle, "pc_known_store"), let caller = dlsym(handle, "pc_known_caller"),
              let last = dlsym(handle, "pc_last_return") else { return nil }
        // Run the subject so that it records a genuine return address.
        var buffer = [CChar](repeating: 0, count: 4)
        typealias Caller = @convention(c) (UnsafeMutablePointer<CChar>) -> Void
        buffer.withUnsafeMutableBufferPointer { unsafeBitCast(caller, to: Caller.self)($0.baseAddress!) }
        let returnAddress = UInt64(UInt(bitPattern: last.assumingMemoryBound(to: UnsafeRawPointer?.self).pointee))
        guard let base = loadBase(of: store) else { return nil }
        return LoadedCSubject(directory: dir, path: so, base: UInt64(UInt(bitPattern: base)),
                              entry: UInt64(UInt(bitPattern: store)), returnAddress: returnAddress)
    }
}

/// dladdr's dli_fbase: where the object holding `address` is mapped. (glibc declares
/// dladdr only under _GNU_SOURCE, so it is looked up by name; Dl_info is four pointers.)
public func loadBase(of address: UnsafeRawPointer) -> UnsafeRawPointer? {
    typealias DlAddr = @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>) -> Int32
    guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "dladdr") else { return nil }   // RTLD_DEFAULT
    var info = [UnsafeRawPointer?](repeating: nil, count: 4)   // fname, fbase, sname, saddr
    let ok = info.withUnsafeMutableBufferPointer { unsafeBitCast(f, to: DlAddr.self)(address, $0.baseAddress!) }
    return ok != 0 ? info[1] : nil
}
