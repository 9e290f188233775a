// swift-tools-version: 6.1
import PackageDescription

/// One set of settings for every target, as Hummingbird does.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// gRPC, only with the Serving trait: the GPU machine's binary (`--disable-default-traits`) builds none of it.
let grpcDependencies: [Target.Dependency] = [
    .product(name: "GRPCCore", package: "grpc-swift-2", condition: .when(traits: ["Serving"])),
    .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport", condition: .when(traits: ["Serving"])),
    .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf", condition: .when(traits: ["Serving"])),
    .product(name: "SwiftProtobuf", package: "swift-protobuf", condition: .when(traits: ["Serving"])),
    // Already resolved through grpc-swift-nio-transport; named for the handlers that work around
    // the transport in each connection's and stream's pipeline (HTTP2DecodingResumer, RequestMessageSizeLimit).
    .product(name: "NIOHTTP2", package: "swift-nio-http2", condition: .when(traits: ["Serving"])),
    .product(name: "NIOHPACK", package: "swift-nio-http2", condition: .when(traits: ["Serving"])),
]

let package = Package(
    name: "swift-hps",
    products: [
        .library(name: "HPS", targets: ["HPS"]),
        .library(name: "HPSCUDA", targets: ["HPSCUDA"]),
        .library(name: "HPSServer", targets: ["HPSServer"]),
        .library(name: "HPSRocksDB", targets: ["HPSRocksDB"]),
        .library(name: "HPSMapped", targets: ["HPSMapped"]),
        .library(name: "HPSRedis", targets: ["HPSRedis"]),
        .library(name: "HPSKafka", targets: ["HPSKafka"]),
        // The C interface (Sources/CHPS/include/hps.h) as libhps_c.so, for Python and other languages.
        .library(name: "hps_c", type: .dynamic, targets: ["HPSC"]),
        .executable(name: "hps", targets: ["hps"]),
        .executable(name: "hps-load", targets: ["hps-load"]),
    ],
    traits: [
        .trait(name: "RocksDB", description: "The RocksDB persistent tier (HPSRocksDB), linking the system librocksdb (Debian librocksdb-dev)."),
        .trait(name: "Serving", description: "hps serve: KServe v2 over HTTP and gRPC (HPSServer: Hummingbird, grpc-swift-2). Off for the GPU machine's binary, which must stay small and free of Foundation's internationalization."),
        .trait(name: "Kafka", description: "Online updates from Kafka (HPSKafka), linking the system librdkafka (Debian librdkafka-dev)."),
        .default(enabledTraits: ["Serving"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // gRPC for `hps serve`, with the Serving trait only; the generated code is committed.
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        // Already resolved through Hummingbird; named for the HTTP/1 request parts our connection handler reads.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // Already resolved through swift-nio; HPS opens, reads and writes its files with its FileDescriptor.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Prefetch and other one-line compiler builtins Swift does not expose.
        .target(name: "CHPSSupport"),
        .target(
            name: "HPS",
            dependencies: [
                "CHPSSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        // The GPU path: the CUDA driver and NVRTC opened with dlopen at first use; the kernels'
        // CUDA C is a source file embedded in the binary.
        .target(
            name: "HPSCUDA",
            dependencies: ["HPS"],
            resources: [.embedInCode("Kernels/Lookup.cu")],
            swiftSettings: swiftSettings
        ),
        // KServe v2 over HTTP (Hummingbird) and gRPC (grpc-swift-2, its code in GRPC/ under #if Serving),
        // health, model metadata, metrics.
        .target(
            name: "HPSServer",
            dependencies: [
                "HPS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                // NIOThreadPool, which the lookups that may block run on.
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ] + grpcDependencies,
            exclude: ["GRPC/Proto"],
            swiftSettings: swiftSettings
        ),
        // RocksDB's C API, from the system (Debian librocksdb-dev); used only with the RocksDB trait.
        .systemLibrary(
            name: "CRocksDB",
            path: "Sources/CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // The RocksDB tier; without the RocksDB trait an empty module whose registerBackends() registers nothing.
        .target(
            name: "HPSRocksDB",
            dependencies: ["HPS", .target(name: "CRocksDB", condition: .when(traits: ["RocksDB"]))],
            swiftSettings: swiftSettings
        ),
        // librdkafka's C API and its mock cluster, from the system (Debian librdkafka-dev); used only with the Kafka trait.
        .systemLibrary(
            name: "CRdKafka",
            path: "Sources/CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // Online updates in HugeCTR's Kafka format: the message codec and topics always; the
        // producer and consumers over librdkafka with the Kafka trait.
        .target(
            name: "HPSKafka",
            dependencies: [
                "HPS",
                .target(name: "CRdKafka", condition: .when(traits: ["Kafka"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The C interface's header (hps.h) and its version function.
        .target(name: "CHPS"),
        // The C interface over the lookup sessions, every tier of the build registered.
        .target(
            name: "HPSC",
            dependencies: ["CHPS", "HPS", "HPSCUDA", "HPSMapped", "HPSRedis", "HPSRocksDB",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Tools outside the library products, linked by the hps command (and the tests):
        // the seed notebook's model and demo, CPU and GPU (hps demo, hps serve --demo);
        .target(name: "HPSDemo", dependencies: ["HPS", "HPSCUDA"], swiftSettings: swiftSettings),
        // the benchmarks of hps bench;
        .target(
            name: "HPSBenchmarks",
            dependencies: ["CHPSSupport", "HPS", "HPSCUDA", "HPSDemo", "HPSMapped", "HPSRedis",
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // the GPU self-test of hps selftest.
        .target(name: "HPSSelfTest", dependencies: ["HPS", "HPSCUDA", "HPSDemo"], swiftSettings: swiftSettings),
        // The memory-mapped tier: serves straight from HugeCTR sparse files through an index beside them.
        .target(name: "HPSMapped", dependencies: ["HPS", "CHPSSupport"], swiftSettings: swiftSettings),
        // A child process for the SIGKILL durability test: writes batches and prints each acknowledged one.
        .executableTarget(
            name: "hps-rocksdb-writer",
            dependencies: ["HPS", "HPSRocksDB"],
            swiftSettings: swiftSettings
        ),
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
                "HPSDemo",
                "HPSBenchmarks",
                "HPSSelfTest",
                .target(name: "HPSServer", condition: .when(traits: ["Serving"])),
                "HPSRocksDB",
                "HPSMapped",
                "HPSRedis",
                "HPSKafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // A load generator for hps serve: open- and closed-loop KServe v2 requests over keep-alive connections.
        .executableTarget(
            name: "hps-load",
            dependencies: [
                "HPS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // The gRPC transport uses the generated KServe v2 client.
                .target(name: "HPSServer", condition: .when(traits: ["Serving"])),
            ] + grpcDependencies,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HPSTests",
            // The CLI tests run the built `hps` binary, so it must be built with them.
            dependencies: ["HPS", "HPSCUDA", "HPSDemo", "HPSBenchmarks", "HPSStoreTestSupport", "hps"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HPSServerTests",
            dependencies: [
                "HPS",
                "HPSDemo",
                "HPSServer",
                "HPSStoreTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ] + grpcDependencies,
            swiftSettings: swiftSettings
        ),
        // Random rows and lookup helpers shared by the store tiers' tests.
        .target(name: "HPSStoreTestSupport", dependencies: ["HPS"], path: "Tests/HPSStoreTestSupport",
                swiftSettings: swiftSettings),
        .testTarget(
            name: "HPSRocksDBTests",
            // The durability test runs the built writer and kills it.
            dependencies: ["HPS", "HPSRocksDB", "HPSStoreTestSupport", "hps-rocksdb-writer"],
            swiftSettings: swiftSettings
        ),
        // The broker tests need the Kafka trait: they start librdkafka's mock cluster in process.
        // `hps publish` is run as a process by its test.
        .testTarget(name: "HPSKafkaTests", dependencies: ["HPS", "HPSKafka", "HPSStoreTestSupport", "hps"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "HPSMappedTests", dependencies: ["HPS", "HPSMapped", "HPSBenchmarks", "HPSStoreTestSupport"],
                    swiftSettings: swiftSettings),
        // Needs redis-server and redis-cli: the tests start their own cluster on ports 7100-7102.
        .testTarget(
            name: "HPSRedisTests",
            // The CLI test runs the built `hps` binary against the cluster; the L1 cache
            // tests put RocksDB under it.
            dependencies: ["HPS", "HPSRedis", "HPSRocksDB", "hps"],
            swiftSettings: swiftSettings
        ),
    ]
)
