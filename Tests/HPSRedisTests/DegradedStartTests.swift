import Foundation
import HPS
import HPSRocksDB
import NIOCore
import Testing

@testable import HPSRedis

struct DegradedStartTests {
    /// A model of one table (1,200 keys, vec 4) over redis_cluster and rocks_db.
    func configuration(_ cluster: TestCluster, rows: TestRows) throws -> HPSConfiguration {
        let directory = cluster.directory + "/degraded"
        _ = try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: directory + "/a", table: "a", keys: k, vectors: v, vecSize: rows.vecSize)
            }
        }
        return try HPSConfiguration.parse(json: """
            {
              "supportlonglong": true,
              "volatile_db": {"type": "redis_cluster", "address": "\(cluster.address)", "num_partitions": 6},
              "persistent_db": {"type": "rocks_db", "path": "\(directory)/db"},
              "models": [{
                "model": "m", "sparse_files": ["\(directory)/a"], "embedding_table_names": ["a"],
                "embedding_vecsize_per_table": [4], "maxnum_catfeature_query_per_table_per_sample": [4],
                "default_value_for_each_table": [-1], "deployed_device_list": [0], "gpucache": false,
                "max_batch_size": 300
              }]
            }
            """)
    }

    @Test("a Redis node down at start: the model loads, says so once, serves that node's keys from rocks_db, and the keys are written to the node when it returns, keeping a vector updated meanwhile")
    func nodeDownAtStart() throws {
        try withCluster { cluster in
            let rows = TestRows(count: 1200, vecSize: 4, seed: 21)
            let configuration = try configuration(cluster, rows: rows)
            let victim = cluster.ports[1]
            try cluster.kill(victim)

            let server = try HierarchicalParameterServer(configuration: configuration, backends: redisAndRocksDB, parallelism: 1)
            let notices = server.warnings.filter { $0.contains("were not loaded into redis_cluster") }
            #expect(notices.count == 1, "\(server.warnings)")
            #expect(notices.first?.contains("127.0.0.1:\(victim)") == true, "\(notices)")
            #expect(notices.first?.contains("answered from rocks_db") == true, "\(notices)")
            #expect(server.catchUp.waiting.count == 1)

            // Every key answers with its row: the victim's from rocks_db.
            let session = try server.session(model: "m")
            #expect(bitwiseEqual(try session.lookup(table: 0, keys: rows.keys), rows.vectors))
            let redis = try #require(server.volatileStore?.table(server.volatileStore?.tableTags.first ?? ""))
            let before = lookup(redis, keys: rows.keys)
            #expect(!before.missed.isEmpty && before.missed.count < rows.keys.count, "some keys, not all, are on the victim")
            #expect(server.catchUp.attempt().isEmpty, "nothing to catch up on while the node is down")

            try cluster.restart(victim)
            try cluster.waitUntilHealthy()
            // An online update of a key of the victim lands before the catch-up; the catch-up keeps it.
            let updatedIndex = before.missed[0]
            let updated: [Float] = [9, 8, 7, 6]
            _ = try [rows.keys[updatedIndex]].withUnsafeBufferPointer { k in
                try updated.withUnsafeBufferPointer { v in try redis.insert(member: 0, keys: k, vectors: v, parallelism: 1) }
            }

            var caughtUp: [String] = []
            let deadline = Date().addingTimeInterval(20)
            while caughtUp.isEmpty && Date() < deadline {
                caughtUp = server.catchUp.attempt()
                if caughtUp.isEmpty { Thread.sleep(forTimeInterval: 0.2) }
            }
            #expect(caughtUp.count == 1, "the table caught up within 20 s")
            #expect(caughtUp.first?.contains("\(before.missed.count - 1) key(s)") == true, "\(caughtUp)")
            #expect(server.catchUp.waiting.isEmpty)

            let after = lookup(redis, keys: rows.keys)
            #expect(after.missed.isEmpty)
            var want = rows.vectors
            want.replaceSubrange((updatedIndex * 4)..<(updatedIndex * 4 + 4), with: updated)
            #expect(bitwiseEqual(after.vectors, want))
        }
    }

    @Test("an insert into a cluster with a node down stores the other nodes' keys and throws partlyUnavailable with the count left out")
    func insertWithNodeDown() throws {
        try withCluster { cluster in
            var options = RedisCluster.Options()
            options.connectTimeout = .milliseconds(500)
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 6), options: options)
            let table = try store.redisTable("hps_et.m.partly", vecSize: 4, members: 1)
            let rows = TestRows(count: 600, vecSize: 4, seed: 23)
            let victim = cluster.ports[2]
            try cluster.kill(victim)
            let onVictim = rows.keys.indices.filter { i in
                store.cluster.node(forSlot: table.slots[table.partition(rows.keys[i], member: 0)])?.port == victim
            }
            do {
                _ = try rows.insert(into: table)
                Issue.record("the insert did not throw")
            } catch let error as StoreError {
                guard case let .partlyUnavailable(kind, tag, keys, counts, reason) = error else {
                    Issue.record("threw \(error)")
                    return
                }
                #expect(kind == "redis_cluster" && tag == "hps_et.m.partly")
                #expect(keys == onVictim.count)
                #expect(counts.inserted == rows.keys.count - onVictim.count)
                #expect(reason.contains("\(victim)"), "\(reason)")
                #expect(error.description.contains("left \(onVictim.count) key(s) out of redis_cluster"), "\(error)")
            }
            let result = lookup(table, keys: rows.keys)
            #expect(result.missed == onVictim)
        }
    }
}
