// swift-tools-version:6.0
// Benchmarks for powercut, kept apart from the main package so the test build does
// not compile them. Run: swift run -c release --package-path Benchmarks powercut-bench
import PackageDescription

let package = Package(
    name: "powercut-benchmarks",
    dependencies: [.package(name: "powercut", path: "..")],
    targets: [
        .executableTarget(
            name: "powercut-bench",
            dependencies: [
                .product(name: "PowercutTrace", package: "powercut"),
                .product(name: "PowercutModel", package: "powercut"),
            ]
        ),
    ]
)
