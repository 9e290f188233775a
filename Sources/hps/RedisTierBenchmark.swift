import HPS
import HPSRedis

/// `hps bench --tier-rates --redis ADDRESS`: the `redis_cluster` tier's batch
/// lookup rate against `redis-benchmark` on the same cluster in the same run,
/// pipelined `HMGET` of values of the same size, counting fields fetched per
/// second. The baseline is the best of a few field counts per `HMGET`.
enum RedisTierBenchmark {
    /// One `redis-benchmark` configuration: fields per `HMGET`, clients, pipeline depth.
    struct Baseline: Sendable {
        var fields: Int
        var clients: Int
        var pipeline: Int
    }

    static let baselines = [
        Baseline(fields: 10, clients: 50, pipeline: 16),
        Baseline(fields: 100, clients: 50, pipeline: 16),
        Baseline(fields: 1000, clients: 6, pipeline: 2),
    ]

    /// Rows of the result table: (measurement, figure).
    static func run(address: String, keys: Int, batchKeys: Int, runs: Int, partitions: Int,
                    connections: Int) throws -> [(String, String)] {
        let vecSize = 128, valueBytes = vecSize * 4
        let tier = try RedisBenchmark.tierRate(address: address, keys: keys, vecSize: vecSize, batchKeys: batchKeys,
                                               runs: runs, partitions: partitions, connections: connections)
        guard tier.hits == tier.lookups, tier.vectorsMatch else {
            throw CheckFailure(reason: "the Redis tier answered \(tier.hits) of \(tier.lookups) keys (vectors match: \(tier.vectorsMatch))")
        }
        // The baseline's hashes: one per master, named by redis-benchmark itself.
        guard let seed = NodeAddress.list(address)?.first else {
            throw CheckFailure(reason: "--redis \(address) is not a list of host:port")
        }
        let common = ["-h", seed.host, "-p", String(seed.port), "--cluster"]
        _ = try runProgram("redis-benchmark", common + ["-c", "30", "-n", "300", "-q", "HSET", "hps_bench{tag}", "probe", "x"])
        let hashes = try RedisBenchmark.keys(address: address, matching: "hps_bench{*")
        guard !hashes.isEmpty else { throw CheckFailure(reason: "redis-benchmark --cluster wrote no hps_bench{…} hash") }
        let fieldsPerHash = max(1, keys / hashes.count)
        try RedisBenchmark.fillBaselineHashes(address: address, hashes: hashes, fields: fieldsPerHash, valueBytes: valueBytes)

        var rows: [(String, String)] = []
        let nodes = tier.partitionsPerNode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        rows.append(("swift-hps redis_cluster tier: \(keys) keys × vec \(vecSize) (\(valueBytes)-byte values), \(partitions) partitions (\(nodes)), \(connections) connections per node; lookups of \(batchKeys) random keys, one call at a time, median of \(runs)",
                     "\(format(tier.seconds * 1e3, 2)) ms per call = \(millions(tier.keysPerSecond)) keys/s = \(millions(tier.keysPerSecond)) values/s (\(format(tier.keysPerSecond * Double(valueBytes) / 1e6, 0)) MB/s); vectors checked: \(tier.vectorsMatch)"))
        var best = 0.0
        for baseline in baselines {
            let requests = max(200, 2_000_000 / baseline.fields)
            let arguments = common + ["-c", String(baseline.clients), "-P", String(baseline.pipeline), "-n", String(requests),
                                      "-r", String(fieldsPerHash), "--csv", "HMGET", "hps_bench{tag}"]
                + Array(repeating: "__rand_int__", count: baseline.fields)
            let output = try runProgram("redis-benchmark", arguments)
            guard let rate = requestsPerSecond(csv: output) else {
                throw CheckFailure(reason: "redis-benchmark printed no rate: \(output.suffix(200))")
            }
            let fieldsPerSecond = rate * Double(baseline.fields)
            best = max(best, fieldsPerSecond)
            rows.append(("redis-benchmark --cluster, HMGET of \(baseline.fields) random fields of \(hashes.count) hashes × \(fieldsPerHash) fields × \(valueBytes) bytes, -c \(baseline.clients) -P \(baseline.pipeline), \(requests) requests",
                         "\(format(rate, 0)) requests/s = \(millions(fieldsPerSecond)) fields/s"))
        }
        let ratio = tier.keysPerSecond / best
        rows.append(("swift-hps tier ÷ best redis-benchmark (target ≥ 50%)",
                     "\(format(ratio * 100, 1))%: \(ratio >= 0.5 ? "met" : "not met")"))
        return rows
    }

    /// The requests per second of `redis-benchmark --csv` (the second field of its last line).
    static func requestsPerSecond(csv: String) -> Double? {
        guard let line = csv.split(separator: "\n").last(where: { $0.hasPrefix("\"HMGET") }) else { return nil }
        let fields = line.split(separator: ",")
        guard fields.count >= 2 else { return nil }
        return Double(fields[fields.count >= 8 ? fields.count - 7 : 1].filter { $0 != "\"" })
    }

    static func millions(_ value: Double) -> String {
        format(value / 1e6, 3) + " M"
    }
}
