// swift-tools-version: 6.1
import Foundation
import PackageDescription

/// Coverage-guided fuzzing of swift-hps's parsers with libFuzzer: one harness
/// executable per parser, each defining `LLVMFuzzerTestOneInput` (libFuzzer's
/// runtime supplies `main`, hence `-parse-as-library`). Built and run by
/// `scripts/fuzz.sh`, which passes `--sanitize=fuzzer --sanitize=address`;
/// docs/fuzzing.md says what each harness checks and what was found.
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
/// The package one folder up; a path dependency's identity is its folder's name,
/// which is the clone's (swift-hps, or whatever CI named it).
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootPackage = root.lastPathComponent.lowercased()
let hps = Target.Dependency.product(name: "HPS", package: rootPackage)

let package = Package(
    name: "hps-fuzz",
    dependencies: [
        // The package one folder up, with its default trait (Serving), which
        // the KServe harnesses need.
        .package(path: root.path),
    ],
    targets: [
        // What every harness shares: the check that turns a wrong result into a crash libFuzzer keeps.
        .target(name: "FuzzSupport"),
        .executableTarget(name: "FuzzConfiguration", dependencies: ["FuzzSupport", hps], swiftSettings: harness),
        .executableTarget(name: "FuzzSparseModelFolder",
                          dependencies: ["FuzzSupport", hps, .product(name: "HPSMapped", package: rootPackage)],
                          swiftSettings: harness),
        // The served model the two KServe harnesses check their answers against.
        .target(name: "FuzzKServeSupport",
                dependencies: ["FuzzSupport", hps, .product(name: "HPSServer", package: rootPackage)]),
        .executableTarget(name: "FuzzKServeHTTP",
                          dependencies: ["FuzzSupport", "FuzzKServeSupport", hps, .product(name: "HPSServer", package: rootPackage)],
                          swiftSettings: harness),
        .executableTarget(name: "FuzzKServeGRPC",
                          dependencies: ["FuzzSupport", "FuzzKServeSupport", hps, .product(name: "HPSServer", package: rootPackage)],
                          swiftSettings: harness),
        .executableTarget(name: "FuzzRESP",
                          dependencies: ["FuzzSupport", hps, .product(name: "HPSRedis", package: rootPackage)],
                          swiftSettings: harness),
        .executableTarget(name: "FuzzUpdateMessage",
                          dependencies: ["FuzzSupport", hps, .product(name: "HPSKafka", package: rootPackage)],
                          swiftSettings: harness),
    ]
)
