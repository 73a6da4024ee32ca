// swift-tools-version:6.0
// Fuzz targets for powercut, kept apart from the main package (like Benchmarks/) so the
// test build does not compile them. Each target is an executable that libFuzzer drives
// through `LLVMFuzzerTestOneInput`; build and run them all with `Tools/fuzz [SECONDS]`,
// which passes the flags that turn on coverage-guided fuzzing:
//
//     swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address --product fuzz-text-reader
//
// The targets' logic lives in PowercutFuzzing; each executable's main only hands the
// process to libFuzzer's driver (LLVMFuzzerRunDriver) with its target. (SwiftPM gives
// every executable a main of its own, so libFuzzer's main cannot be used.)
// Fuzz/README.md says what each target checks.
import PackageDescription

let package = Package(
    name: "powercut-fuzz",
    dependencies: [.package(name: "powercut", path: "..")],
    targets: [
        // libFuzzer's driver, declared for Swift.
        .target(name: "CFuzzerDriver"),
        .target(
            name: "PowercutFuzzing",
            dependencies: [
                "CFuzzerDriver",
                .product(name: "PowercutTrace", package: "powercut"),
                .product(name: "PowercutModel", package: "powercut"),
                // Triage (baselines, suppressions), the printers (text, JSON, SARIF, JUnit,
                // GitHub, show, info) and explain with its pictures.
                .product(name: "PowercutSymbolize", package: "powercut"),
                .product(name: "PowercutTriage", package: "powercut"),
                .product(name: "PowercutReport", package: "powercut"),
                .product(name: "PowercutExplain", package: "powercut"),
            ]
        ),
        .executableTarget(name: "fuzz-text-reader", dependencies: ["PowercutFuzzing"]),
        .executableTarget(name: "fuzz-binary-reader", dependencies: ["PowercutFuzzing"]),
        .executableTarget(name: "fuzz-replay", dependencies: ["PowercutFuzzing"]),
        .executableTarget(name: "fuzz-explain", dependencies: ["PowercutFuzzing"]),
        .executableTarget(name: "fuzz-roundtrip", dependencies: ["PowercutFuzzing"]),
    ]
)
