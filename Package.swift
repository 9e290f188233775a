// swift-tools-version: 6.1
import PackageDescription

/// One set of settings for every target, as Hummingbird does.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-hps",
    products: [
        .library(name: "HPS", targets: ["HPS"]),
        .library(name: "HPSCUDA", targets: ["HPSCUDA"]),
        .library(name: "HPSServer", targets: ["HPSServer"]),
        .executable(name: "hps", targets: ["hps"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Prefetch and other one-line compiler builtins Swift does not expose.
        .target(name: "CHPSSupport"),
        .target(
            name: "HPS",
            dependencies: [
                "CHPSSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The GPU path: the CUDA driver and NVRTC opened with dlopen at first use.
        .target(name: "HPSCUDA", dependencies: ["HPS"], swiftSettings: swiftSettings),
        // KServe v2 over HTTP (Hummingbird), health, model metadata, metrics.
        .target(
            name: "HPSServer",
            dependencies: [
                "HPS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hps",
            dependencies: [
                "HPS",
                "HPSCUDA",
                "HPSServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HPSTests",
            // The CLI tests run the built `hps` binary, so it must be built with them.
            dependencies: ["HPS", "HPSCUDA", "hps"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HPSServerTests",
            dependencies: [
                "HPS",
                "HPSServer",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
