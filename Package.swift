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
        .library(name: "HPSRedis", targets: ["HPSRedis"]),
        .executable(name: "hps", targets: ["hps"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
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
        // The Redis Cluster volatile tier: RESP, the slot map and the store, on SwiftNIO.
        .target(
            name: "HPSRedis",
            dependencies: [
                "HPS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hps",
            dependencies: [
                "HPS",
                "HPSCUDA",
                "HPSRedis",
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
        // Needs redis-server and redis-cli: the tests start their own cluster on ports 7100-7102.
        .testTarget(
            name: "HPSRedisTests",
            // The CLI test runs the built `hps` binary against the cluster.
            dependencies: ["HPS", "HPSRedis", "hps"],
            swiftSettings: swiftSettings
        ),
    ]
)
