import HPSRedis
import HPS
import HPSDemo
import NIOCore

/// The Redis side of `hps bench --tier-rates`: the `redis_cluster` tier's
/// batch lookup rate, and the hashes that `redis-benchmark` reads for the
/// baseline it is set beside (pipelined `HMGET` of values of the same size,
/// on the same cluster, in the same run).
package enum RedisBenchmark {
    /// What timing the tier measured.
    package struct TierRate: Sendable {
        /// Keys per lookup call.
        package var batchKeys: Int
        /// Median seconds of one call.
        package var seconds: Double
        /// Keys found in the timed calls; every key looked up is held, so all of them.
        package var hits: Int
        /// Keys looked up in the timed calls.
        package var lookups: Int
        /// Whether the vectors of the first call equal the ones inserted, bit for bit.
        package var vectorsMatch: Bool
        /// The partitions of the table on each master, `host:port` → count.
        package var partitionsPerNode: [String: Int]

        /// Keys (each one field fetched and one vector written) per second.
        package var keysPerSecond: Double { Double(batchKeys) / seconds }
    }

    /// Fills table `hps_et.bench.redis` of the cluster at `address` with
    /// `keys` random keys of `vecSize` floats (a row's floats follow from its
    /// index, so that answers can be checked), then, in each of `rounds`
    /// rounds, times `runs` lookups of `batchKeys` keys drawn at random from
    /// them, one call at a time, after two untimed calls, and calls `between`
    /// (where a baseline measured in turn with the tier runs, so that both
    /// see the same load on a shared machine).
    /// - Parameters:
    ///   - partitions: `num_partitions`, the hashes the table is spread over.
    ///   - connections: `num_node_connections`.
    /// - Returns: one rate per round.
    /// - Throws: `StoreError` or `RedisError` when the cluster cannot be reached or
    ///   written, and whatever `between` throws.
    package static func tierRates(address: String, keys: Int, vecSize: Int, batchKeys: Int, runs: Int,
                                 partitions: Int, connections: Int, rounds: Int,
                                 between: () throws -> Void) throws -> [TierRate] {
        var configuration = VolatileDatabaseConfiguration()
        configuration.type = .redisCluster
        configuration.address = address
        configuration.numPartitions = partitions
        configuration.numNodeConnections = connections
        let store = try RedisClusterStore(configuration: configuration)
        let table = try store.redisTable("hps_et.bench.redis", vecSize: vecSize, members: 1)
        var random = SplitMix64(seed: 21)
        let tableKeys = (0..<keys).map { _ in Int64(bitPattern: random.next() >> 1) }
        func row(_ index: Int, into vector: UnsafeMutableBufferPointer<Float>) {
            for j in 0..<vecSize { vector[j] = Float(index &* 7 &+ j) }
        }
        // Insert in chunks, as a server loading a table does.
        let chunk = 65_536
        var vectors = [Float](repeating: 0, count: chunk * vecSize)
        var start = 0
        while start < keys {
            let n = min(chunk, keys - start)
            vectors.withUnsafeMutableBufferPointer { v in
                for i in 0..<n { row(start + i, into: UnsafeMutableBufferPointer(rebasing: v[(i * vecSize)..<((i + 1) * vecSize)])) }
            }
            _ = try tableKeys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in
                    try table.insert(member: 0, keys: UnsafeBufferPointer(rebasing: k[start..<(start + n)]),
                                     vectors: UnsafeBufferPointer(rebasing: v[0..<(n * vecSize)]), parallelism: 1)
                }
            }
            start += n
        }
        // Batches of random rows (indices into tableKeys), rotated through the runs.
        let batchCount = 8
        let rows = (0..<(batchCount * batchKeys)).map { _ in Int(random.next() % UInt64(keys)) }
        let queries = rows.map { tableKeys[$0] }
        var output = [Float](repeating: .nan, count: batchKeys * vecSize)
        var hits = 0, lookups = 0, call = 0
        let missed = UnsafeMutablePointer<Int>.allocate(capacity: batchKeys)
        defer { missed.deallocate() }
        func lookUp(counting: Bool) {
            let b = call % batchCount
            call += 1
            queries.withUnsafeBufferPointer { q in
                output.withUnsafeMutableBufferPointer { out in
                    var run = LookupRun(member: 0, keys: q.baseAddress! + b * batchKeys, count: batchKeys, output: out.baseAddress!)
                    let misses = withUnsafePointer(to: &run) {
                        table.lookup(UnsafeBufferPointer(start: $0, count: 1), defaults: nil, missed: missed, parallelism: 1)
                    }
                    if counting {
                        hits += batchKeys - misses
                        lookups += batchKeys
                    }
                }
            }
        }
        var perNode: [String: Int] = [:]
        for slot in table.slots {
            perNode[store.cluster.node(forSlot: slot)?.description ?? "unassigned", default: 0] += 1
        }
        var rates: [TierRate] = []
        for _ in 0..<max(1, rounds) {
            hits = 0
            lookups = 0
            call = 0
            lookUp(counting: false)
            // The first call's answers, checked against the rows inserted.
            var expected = [Float](repeating: 0, count: vecSize)
            var vectorsMatch = true
            for i in 0..<batchKeys {
                expected.withUnsafeMutableBufferPointer { row(rows[i], into: $0) }
                for j in 0..<vecSize where output[i * vecSize + j].bitPattern != expected[j].bitPattern {
                    vectorsMatch = false
                }
            }
            lookUp(counting: false)
            var times: [Double] = []
            for _ in 0..<runs {
                let started = ContinuousClock.now
                lookUp(counting: true)
                times.append((ContinuousClock.now - started).seconds)
            }
            rates.append(TierRate(batchKeys: batchKeys, seconds: percentile(times, 0.5), hits: hits, lookups: lookups,
                                  vectorsMatch: vectorsMatch, partitionsPerNode: perNode))
            try between()
        }
        return rates
    }

    /// The keys of every master whose name matches `pattern` (`SCAN … MATCH`),
    /// such as the hashes a `redis-benchmark --cluster` run wrote to after
    /// putting each master's hash tag in place of `{tag}`.
    package static func keys(address: String, matching pattern: String) throws -> [String] {
        let cluster = try RedisCluster(seeds: NodeAddress.list(address) ?? [], options: .init())
        var found: [String] = []
        for node in cluster.masters {
            var cursor = "0"
            repeat {
                let scan = RedisCommand(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
                let replies = try cluster.pool(node).connection()
                    .flatMap { $0.send([scan]) }
                    .wait()
                guard let parts = replies[0].array, parts.count == 2, let next = parts[0].string,
                      let names = parts[1].array else {
                    throw RedisError.protocolError(address: node.description, reason: "SCAN answered \(replies[0])")
                }
                found += names.compactMap(\.string)
                cursor = next
            } while cursor != "0"
        }
        return found.sorted()
    }

    /// Replaces each hash of `hashes` with `fields` fields named as
    /// `redis-benchmark -r` names them (the 12-digit, zero-padded numbers
    /// 0..<fields), each holding `valueBytes` bytes.
    package static func fillBaselineHashes(address: String, hashes: [String], fields: Int, valueBytes: Int) throws {
        let cluster = try RedisCluster(seeds: NodeAddress.list(address) ?? [], options: .init())
        let value = [UInt8](repeating: 0x5A, count: valueBytes)
        _ = cluster.execute(hashes.map { RedisCluster.Request(slot: HashSlot.slot($0), command: RedisCommand(["DEL", $0])) })
        let chunk = 10_000
        for hash in hashes {
            let slot = HashSlot.slot(hash)
            var requests: [RedisCluster.Request] = []
            var start = 0
            while start < fields {
                let n = min(chunk, fields - start)
                var command = RedisCommand(arguments: 2 + 2 * n, capacity: n * (valueBytes + 32) + 64)
                command.append("HSET")
                command.append(hash)
                for f in start..<(start + n) {
                    command.append(fieldName(f))
                    value.withUnsafeBytes { command.append($0) }
                }
                requests.append(RedisCluster.Request(slot: slot, command: command))
                start += n
            }
            for reply in cluster.execute(requests) {
                if case let .failure(error) = reply { throw error }
                if case let .success(.error(message)) = reply {
                    throw RedisError.protocolError(address: address, reason: "HSET \(hash) answered \(message)")
                }
            }
        }
    }

    /// `redis-benchmark`'s replacement of `__rand_int__`: 12 digits, zero-padded.
    static func fieldName(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }
}
