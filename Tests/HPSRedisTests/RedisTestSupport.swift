import Foundation
import HPS
import Synchronization
import Testing

@testable import HPSRedis

/// Why a test could not run its Redis Cluster.
struct RedisSetupError: Error, CustomStringConvertible {
    var description: String
}

/// A Redis Cluster of three masters on loopback, started for one test by
/// `scripts/redis-cluster.sh` in a temporary folder and stopped by `stop`.
///
/// Each cluster takes three ports of its own (7100-7102, 7110-7112, …), so
/// tests that run in parallel do not share nodes.
final class TestCluster: Sendable {
    let directory: String
    let basePort: Int
    var ports: [Int] { [basePort, basePort + 1, basePort + 2] }
    var address: String { ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    private static let nextBase = Atomic<Int>(7100)
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/redis-cluster.sh").path

    /// Starts a cluster; fails (never skips) when redis-server is not installed.
    init() throws {
        for tool in ["redis-server", "redis-cli"] {
            guard Self.run("/bin/sh", ["-c", "command -v \(tool)"]).status == 0 else {
                throw RedisSetupError(description: "\(tool) not found: the HPSRedis tests need a real Redis Cluster; install it with `apt-get install redis-server`")
            }
        }
        basePort = Self.nextBase.add(10, ordering: .relaxed).oldValue
        directory = NSTemporaryDirectory() + "hps-redis-\(getpid())-\(basePort)"
        // A cluster left over from an interrupted run on these ports goes first.
        _ = Self.run(Self.script, ["stop", directory, String(basePort)])
        let started = Self.run(Self.script, ["start", directory, String(basePort)])
        guard started.status == 0 else {
            _ = Self.run(Self.script, ["stop", directory, String(basePort)])
            throw RedisSetupError(description: "scripts/redis-cluster.sh start failed: \(started.output)")
        }
    }

    /// Shuts the nodes down and removes the folder.
    func stop() {
        _ = Self.run(Self.script, ["stop", directory, String(basePort)])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `redis-cli -p port args…` and returns its output.
    @discardableResult
    func cli(_ port: Int, _ arguments: [String]) throws -> String {
        Self.run("/usr/bin/env", ["redis-cli", "-h", "127.0.0.1", "-p", String(port)] + arguments).output
    }

    /// Kills one node without saving.
    func kill(_ port: Int) throws {
        _ = try? cli(port, ["shutdown", "nosave"])
    }

    /// Starts a stopped node again from its nodes.conf.
    func restart(_ port: Int) throws {
        let result = Self.run(Self.script, ["node", directory, String(port)])
        guard result.status == 0 else { throw RedisSetupError(description: "restart failed: \(result.output)") }
    }

    /// Waits until every node says cluster_state:ok.
    func waitUntilHealthy(seconds: Double = 20) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ports.allSatisfy({ (try? cli($0, ["cluster", "info"]))?.contains("cluster_state:ok") == true }) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw RedisSetupError(description: "the cluster did not become healthy in \(seconds) s")
    }

    /// The node id of the node on `port`.
    func nodeID(_ port: Int) throws -> String {
        try cli(port, ["cluster", "myid"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a command to its end with `system` (Foundation's `Process` was
    /// seen to miss the exit of short commands here); its output goes through a
    /// file, because the daemons it starts could hold a pipe open.
    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let path = NSTemporaryDirectory() + "hps-redis-run-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let quoted = ([executable] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let status = system(quoted.joined(separator: " ") + " </dev/null >'\(path)' 2>&1")
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return (status == 0 ? 0 : max(1, status >> 8), output)
    }
}

/// Runs `body` with a fresh cluster, stopping it afterwards whatever happens.
func withCluster<T>(_ body: (TestCluster) throws -> T) throws -> T {
    let cluster = try TestCluster()
    defer { cluster.stop() }
    return try body(cluster)
}

/// A `volatile_db` section for a test cluster.
func redisConfiguration(_ cluster: TestCluster, partitions: Int = 4, maxBatchSize: Int = 65536,
                        margin: UInt64 = .max, policy: OverflowPolicy = .evictRandom,
                        target: Double = 0.8) -> VolatileDatabaseConfiguration {
    var configuration = VolatileDatabaseConfiguration()
    configuration.type = .redisCluster
    configuration.address = cluster.address
    configuration.numPartitions = partitions
    configuration.numNodeConnections = 2
    configuration.maxBatchSize = maxBatchSize
    configuration.overflowMargin = margin
    configuration.overflowPolicy = policy
    configuration.overflowResolutionTarget = target
    return configuration
}

/// Distinct random keys and vectors from a seed.
struct TestRows {
    var keys: [Int64]
    var vectors: [Float]
    let vecSize: Int

    init(count: Int, vecSize: Int, seed: UInt64) {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var seen = Set<Int64>()
        keys = []
        while keys.count < count {
            let key = Int64(bitPattern: next())
            if seen.insert(key).inserted { keys.append(key) }
        }
        vectors = (0..<(count * vecSize)).map { _ in Float(Int64(next() % 2_000_001) - 1_000_000) / 1e6 }
        self.vecSize = vecSize
    }

    func row(_ i: Int) -> [Float] { Array(vectors[(i * vecSize)..<((i + 1) * vecSize)]) }

    @discardableResult
    func insert(into table: any EmbeddingStoreTable, member: Int = 0) throws -> InsertCounts {
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in try table.insert(member: member, keys: k, vectors: v, parallelism: 1) }
        }
    }
}

/// Looks up `keys` of `member` as one run per `runSize` keys, into outputs
/// poisoned with NaN. Returns the vectors, the missed flat indices and the seconds taken.
func lookup(_ table: any EmbeddingStoreTable, member: Int = 0, keys: [Int64], defaults: [Float]? = nil,
            runSize: Int = .max) -> (vectors: [Float], missed: [Int], seconds: Double) {
    let defaults = defaults ?? [Float](repeating: 0, count: table.memberCount)
    var output = [Float](repeating: .nan, count: keys.count * table.vecSize)
    var missed = [Int](repeating: -1, count: max(1, keys.count))
    let start = Date()
    let misses = keys.withUnsafeBufferPointer { k in
        output.withUnsafeMutableBufferPointer { out in
            missed.withUnsafeMutableBufferPointer { m in
                defaults.withUnsafeBufferPointer { d in
                    var runs: [LookupRun] = []
                    var s = 0
                    while s < keys.count {
                        let e = min(keys.count, s + min(runSize, keys.count))
                        runs.append(LookupRun(member: member, keys: k.baseAddress! + s, count: e - s,
                                              output: out.baseAddress! + s * table.vecSize))
                        s = e
                    }
                    return runs.withUnsafeBufferPointer { table.lookup($0, defaults: d, missed: m.baseAddress, parallelism: 1) }
                }
            }
        }
    }
    return (output, Array(missed.prefix(misses)), Date().timeIntervalSince(start))
}

/// Whether two float arrays hold the same bits in every element.
func bitwiseEqual<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool where A.Element == Float, B.Element == Float {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}
