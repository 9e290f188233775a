import HPSBenchmarks
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

    /// Rows of the result table: (measurement, figure). The tier and the
    /// baselines take turns, `rounds` times; each round's ratio is the tier's
    /// rate over that round's best baseline, and the median ratio is reported.
    static func run(address: String, keys: Int, batchKeys: Int, runs: Int, partitions: Int,
                    connections: Int, rounds: Int) throws -> [(String, String)] {
        let vecSize = 128, valueBytes = vecSize * 4
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

        var baselineRates: [[Double]] = []  // per round, fields/s of each baseline
        let tier = try RedisBenchmark.tierRates(address: address, keys: keys, vecSize: vecSize, batchKeys: batchKeys,
                                                runs: runs, partitions: partitions, connections: connections,
                                                rounds: rounds) {
            var round: [Double] = []
            for baseline in baselines {
                let arguments = common + ["-c", String(baseline.clients), "-P", String(baseline.pipeline),
                                          "-n", String(requests(baseline)), "-r", String(fieldsPerHash), "--csv",
                                          "HMGET", "hps_bench{tag}"]
                    + Array(repeating: "__rand_int__", count: baseline.fields)
                let output = try runProgram("redis-benchmark", arguments)
                guard let rate = requestsPerSecond(csv: output) else {
                    throw CheckFailure(reason: "redis-benchmark printed no rate: \(output.suffix(200))")
                }
                round.append(rate * Double(baseline.fields))
            }
            baselineRates.append(round)
        }
        for rate in tier where rate.hits != rate.lookups || !rate.vectorsMatch {
            throw CheckFailure(reason: "the Redis tier answered \(rate.hits) of \(rate.lookups) keys (vectors match: \(rate.vectorsMatch))")
        }
        let tierRates = tier.map(\.keysPerSecond)
        let ratios = zip(tierRates, baselineRates).map { $0 / ($1.max() ?? 1) }
        var rows: [(String, String)] = []
        let nodes = tier[0].partitionsPerNode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        let tierMedian = median(tierRates)
        rows.append(("swift-hps redis_cluster tier: \(keys) keys × vec \(vecSize) (\(valueBytes)-byte values), \(partitions) partitions (\(nodes)), \(connections) connections per node; lookups of \(batchKeys) random keys, one call at a time, median of \(runs) calls per round; \(rounds) rounds taking turns with redis-benchmark",
                     "median of the rounds \(millions(tierMedian)) keys/s = values/s (\(format(tierMedian * Double(valueBytes) / 1e6, 0)) MB/s, \(format(Double(batchKeys) / tierMedian * 1e3, 2)) ms per call); rounds: \(list(tierRates)); vectors checked: true"))
        for (b, baseline) in baselines.enumerated() {
            let rates = baselineRates.map { $0[b] }
            rows.append(("redis-benchmark --cluster, HMGET of \(baseline.fields) random fields of \(hashes.count) hashes × \(fieldsPerHash) fields × \(valueBytes) bytes, -c \(baseline.clients) -P \(baseline.pipeline), \(requests(baseline)) requests per round",
                         "median \(millions(median(rates))) fields/s; rounds: \(list(rates))"))
        }
        let ratio = median(ratios)
        rows.append(("swift-hps tier ÷ the round's best redis-benchmark (target ≥ 50%)",
                     "median \(format(ratio * 100, 1))% (rounds: \(ratios.map { format($0 * 100, 1) + "%" }.joined(separator: ", "))): \(ratio >= 0.5 ? "met" : "not met")"))
        return rows
    }

    static func requests(_ baseline: Baseline) -> Int { max(200, 2_000_000 / baseline.fields) }

    static func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

    static func list(_ rates: [Double]) -> String {
        rates.map { format($0 / 1e6, 3) }.joined(separator: ", ") + " M"
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
