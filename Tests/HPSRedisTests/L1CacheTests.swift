import Foundation
import HPS
import HPSRocksDB
import Testing

@testable import HPSRedis

/// A session on the CPU in front of slow tiers: the bounded CPU cache as
/// L1, a real Redis Cluster as the volatile store, real RocksDB as the
/// persistent store, then the defaults, every level answering some keys.
struct L1CacheTests {
    /// Two tables of vec size 4, fused; Redis holds half of each table's rows
    /// (`initial_cache_rate` 0.5), RocksDB all of them.
    func server(_ cluster: TestCluster, rows: [TestRows], cachePercentage: Double) throws -> HierarchicalParameterServer {
        let directory = cluster.directory + "/l1"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (t, table) in rows.enumerated() {
            _ = try table.keys.withUnsafeBufferPointer { k in
                try table.vectors.withUnsafeBufferPointer { v in
                    try SparseModelFolder.write(path: "\(directory)/t\(t)", table: "t\(t)", keys: k, vectors: v, vecSize: 4)
                }
            }
        }
        let json = """
        {"supportlonglong": true, "fuse_embedding_table": true,
         "volatile_db": {"type": "redis_cluster", "address": "\(cluster.address)", "initial_cache_rate": 0.5,
                         "num_node_connections": 2},
         "persistent_db": {"type": "rocks_db", "path": "\(directory)/db"},
         "models": [{"model": "m", "sparse_files": ["\(directory)/t0", "\(directory)/t1"], "embedding_table_names": ["t0", "t1"],
                     "embedding_vecsize_per_table": [4, 4], "maxnum_catfeature_query_per_table_per_sample": [8, 8],
                     "default_value_for_each_table": [0.25, -0.5], "deployed_device_list": [0], "max_batch_size": 256,
                     "gpucache": true, "gpucacheper": \(cachePercentage), "fuse_embedding_table": true}]}
        """
        try json.write(toFile: directory + "/hps.json", atomically: false, encoding: .utf8)
        return try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: directory + "/hps.json"),
                                               backends: redisAndRocksDB, parallelism: 1)
    }

    /// What the files say a key of `table` has: its row, or the table's default.
    func expected(_ rows: [TestRows], table: Int, keys: [Int64]) -> [Float] {
        keys.flatMap { key in
            rows[table].keys.firstIndex(of: key).map { rows[table].row($0) } ?? [Float](repeating: table == 0 ? 0.25 : -0.5, count: 4)
        }
    }

    @Test("a CPU cache in front of Redis and RocksDB: misses answered by each tier, then hits in the cache")
    func everyLevelAnswers() throws {
        try withCluster { cluster in
            let rows = [TestRows(count: 200, vecSize: 4, seed: 41), TestRows(count: 200, vecSize: 4, seed: 42)]
            let server = try server(cluster, rows: rows, cachePercentage: 1.0)
            let session = try server.session(model: "m")
            #expect(session.tierNames == ["cpu_cache", "redis_cluster", "rocks_db"])
            #expect(session.mayBlock)
            // Keys loaded into Redis (the first half), only in RocksDB (the second), and in no tier.
            let keys0 = Array(rows[0].keys[0..<10]) + Array(rows[0].keys[150..<160]) + [rows[1].keys[0] ^ 7]
            let keys1 = Array(rows[1].keys[5..<8]) + Array(rows[1].keys[190..<195])
            func look() throws -> (vectors: [[Float]], counts: LookupCounts) {
                let before = session.statistics.totals
                let vectors = try session.lookup(tables: [(0, keys0), (1, keys1)])
                var counts = session.statistics.totals
                counts.keys -= before.keys
                counts.defaults -= before.defaults
                for i in counts.tierHits.indices { counts.tierHits[i] -= before.tierHits[i] }
                return (vectors, counts)
            }
            let first = try look()
            #expect(bitwiseEqual(first.vectors[0], expected(rows, table: 0, keys: keys0)))
            #expect(bitwiseEqual(first.vectors[1], expected(rows, table: 1, keys: keys1)))
            // Cold: nothing from the cache; Redis has the first halves, RocksDB the second; one default.
            #expect(first.counts.tierHits == [0, 13, 15])
            #expect(first.counts.defaults == 1)
            let second = try look()
            #expect(bitwiseEqual(second.vectors[0], first.vectors[0]))
            #expect(bitwiseEqual(second.vectors[1], first.vectors[1]))
            // Warm: every key a tier holds now comes from the cache; the absent key is asked again.
            #expect(second.counts.tierHits == [28, 0, 0])
            #expect(second.counts.defaults == 1)
            let cache = try #require(session.groupCaches.first as? CPUEmbeddingCache)
            #expect(cache.statistics.hits == 28)
            #expect(cache.statistics.keys == 58)
            #expect(cache.count == 28)
        }
    }

    @Test("the CPU cache holds at most gpucacheper × the group's keys, evicting the least used, and stays correct")
    func boundedCache() throws {
        try withCluster { cluster in
            let rows = [TestRows(count: 200, vecSize: 4, seed: 43), TestRows(count: 200, vecSize: 4, seed: 44)]
            let server = try server(cluster, rows: rows, cachePercentage: 0.1)
            let session = try server.session(model: "m")
            let cache = try #require(session.groupCaches.first as? CPUEmbeddingCache)
            #expect(cache.capacity == 40)
            var random = SystemRandomNumberGenerator()
            for _ in 0..<20 {
                let picks0 = (0..<8).map { _ in rows[0].keys[Int.random(in: 0..<200, using: &random)] }
                let picks1 = (0..<8).map { _ in rows[1].keys[Int.random(in: 0..<200, using: &random)] }
                let out = try session.lookup(tables: [(0, picks0), (1, picks1)])
                #expect(bitwiseEqual(out[0], expected(rows, table: 0, keys: picks0)))
                #expect(bitwiseEqual(out[1], expected(rows, table: 1, keys: picks1)))
                #expect(cache.count <= cache.capacity)
            }
            #expect(cache.statistics.evictions > 0)
        }
    }
}
