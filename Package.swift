// swift-tools-version:6.0
import PackageDescription

// The reader and the model run once per event (tens of millions a second): their
// state lives in final classes whose every access would otherwise pay for a dynamic
// exclusivity check. Their accesses never overlap (no re-entrancy, single thread).
let hotLoop: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "powercut",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "powercut", targets: ["powercut"]),
        .library(name: "PowercutTrace", targets: ["PowercutTrace"]),
        .library(name: "PowercutModel", targets: ["PowercutModel"]),
        .library(name: "PowercutCrash", targets: ["PowercutCrash"]),
        // The printers, triage, symbolization and explain, for the fuzz targets (Fuzz/) and
        // users' own tools.
        .library(name: "PowercutSymbolize", targets: ["PowercutSymbolize"]),
        .library(name: "PowercutTriage", targets: ["PowercutTriage"]),
        .library(name: "PowercutReport", targets: ["PowercutReport"]),
        .library(name: "PowercutExplain", targets: ["PowercutExplain"]),
        .library(name: "PowercutWorkers", targets: ["PowercutWorkers"]),
        // The reference subjects as a shared library, so `--lib` can load them like any other.
        .library(name: "powercut-subjects", type: .dynamic, targets: ["CPowercutSubjects"]),
        // The recorder's C API (powercut.h) for users' own harnesses.
        .library(name: "powercut-recorder", type: .dynamic, targets: ["CPowercutRecorder"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The trace format: records, text and binary readers and writers.
        .target(name: "PowercutTrace", swiftSettings: hotLoop),
        // The persistence model and the replayer that walks every cut point.
        .target(name: "PowercutModel", dependencies: ["PowercutTrace"], swiftSettings: hotLoop),
        // Output encodings every printer shares: a JSON writer, XML escaping.
        .target(name: "PowercutOutput"),
        // Symbolization: one frame type and one resolution path (return addresses looked
        // up one byte back, inlined calls as frames) for every output.
        .target(name: "PowercutSymbolize", dependencies: ["PowercutTrace"]),
        // CI triage: checked traces, fingerprints, baselines, suppressions.
        .target(name: "PowercutTriage", dependencies: ["PowercutTrace", "PowercutModel", "PowercutSymbolize"]),
        // Printers only: text, JSON, brief, SARIF, JUnit, GitHub annotations, info, show.
        .target(name: "PowercutReport",
                dependencies: ["PowercutTrace", "PowercutModel", "PowercutSymbolize", "PowercutTriage", "PowercutOutput"]),
        // explain: the story of chosen bytes across the cut points (a replay observer),
        // told as text and drawn as an SVG/HTML timeline. It follows up to a megabyte of
        // bytes, each event: the runtime's exclusivity checks were a quarter of its time.
        .target(name: "PowercutExplain", dependencies: ["PowercutTrace", "PowercutModel", "PowercutSymbolize", "PowercutOutput"],
                swiftSettings: hotLoop),
        // The one trace encoder in C (no libc): both recorders write through it.
        .target(name: "CPowercutEncoder"),
        // The recorder's C core: single-step, decode (capstone), unwind (libunwind).
        .target(
            name: "CPowercutRecorder",
            dependencies: ["CPowercutEncoder"],
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [
                .linkedLibrary("capstone"), .linkedLibrary("unwind"), .linkedLibrary("unwind-x86_64"),
                .linkedLibrary("dl"),
            ]
        ),
        // The recorder as Swift: record a call or a closure into a trace.
        .target(name: "PowercutRecorder", dependencies: ["CPowercutRecorder", "CPowercutSubjects", "PowercutTrace"]),
        // Worker processes for jobs that may crash, exit or hang: each costs one job.
        .target(name: "PowercutWorkers"),
        // The sweep: a routine over every alignment and size, in worker processes.
        .target(name: "PowercutSweep",
                dependencies: ["PowercutTrace", "PowercutModel", "PowercutOutput", "PowercutRecorder", "PowercutWorkers"]),
        // The reference subjects: the Linux flushcache copy routines, as they behaved.
        // Built at -O2 in every configuration, as a kernel builds its copy routines: the
        // instruction stream recorded is the one that ships, and sweeps stay fast.
        .target(name: "CPowercutSubjects", cSettings: [.unsafeFlags(["-O2"])]),
        // Kernel lift: a developer's own Linux flushcache code, built into a library the sweep calls.
        .target(name: "PowercutKernelLift", dependencies: ["CPowercutSubjects"]),
        // Crash images: every state a power failure can leave, and the checkers run on them.
        .target(name: "PowercutCrash", dependencies: ["PowercutTrace", "PowercutModel", "PowercutOutput", "PowercutWorkers"]),
        // The command-line frontend.
        .executableTarget(
            name: "powercut",
            dependencies: [
                "PowercutTrace", "PowercutModel", "PowercutSymbolize", "PowercutTriage", "PowercutReport", "PowercutExplain",
                "PowercutRecorder", "PowercutSweep", "PowercutKernelLift", "PowercutCrash",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            plugins: ["VersionStamp"]
        ),
        // Writes the git commit the executable is built from (`powercut --version`).
        .plugin(name: "VersionStamp", capability: .buildTool()),
        .testTarget(name: "PowercutTraceTests", dependencies: ["PowercutTrace", "PowercutTestSupport"]),
        .testTarget(name: "PowercutModelTests", dependencies: ["PowercutModel", "PowercutTrace", "PowercutTestSupport"]),
        .testTarget(name: "PowercutRecorderTests", dependencies: ["PowercutRecorder", "PowercutModel", "PowercutTrace"]),
        .testTarget(name: "PowercutSweepTests", dependencies: ["PowercutSweep", "PowercutModel"]),
        .testTarget(name: "PowercutKernelLiftTests", dependencies: ["PowercutKernelLift", "PowercutSweep", "PowercutRecorder", "PowercutModel"],
                    exclude: ["Trees"]),
        .testTarget(name: "PowercutWorkersTests", dependencies: ["PowercutWorkers"]),
        .testTarget(name: "PowercutSymbolizeTests", dependencies: ["PowercutSymbolize", "PowercutTrace", "PowercutTestSupport"]),
        .testTarget(name: "PowercutReportTests",
                    dependencies: ["PowercutReport", "PowercutTriage", "PowercutSymbolize", "PowercutOutput", "PowercutModel", "PowercutTrace",
                                   "PowercutTestSupport"]),
        .testTarget(name: "PowercutExplainTests", dependencies: ["PowercutExplain", "PowercutSymbolize", "PowercutModel", "PowercutTrace"]),
        .testTarget(name: "PowercutCrashTests", dependencies: ["PowercutCrash", "PowercutModel", "PowercutTrace"]),
        // End-to-end: runs the built powercut binary.
        .testTarget(name: "powercutTests", dependencies: ["powercut", "PowercutTrace", "CPowercutEncoder", "PowercutTestSupport"]),
        // Fixtures more than one test target uses: a C subject built and loaded at test time,
        // SARIF schema validation.
        .target(name: "PowercutTestSupport", path: "Tests/PowercutTestSupport"),
    ]
)
