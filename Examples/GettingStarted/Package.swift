// swift-tools-version: 6.1
import PackageDescription

// The getting-started article's code (Sources/HPS/HPS.docc/GettingStarted.md) as
// a package of its own that depends on swift-hps by path, as a user's package
// would: it sees only the public API, so CI building it proves the article compiles.
let package = Package(
    name: "GettingStarted",
    dependencies: [
        .package(name: "swift-hps", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "getting-started",
            dependencies: [.product(name: "HPS", package: "swift-hps")]
        ),
    ]
)
