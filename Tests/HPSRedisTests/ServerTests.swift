import Foundation
import HPS
import Testing

import HPSRedis

struct RedisServerTests {
    @Test("a server with volatile_db redis_cluster loads its tables into Redis and answers every key exactly")
    func serverOverRedis() throws {
        try withCluster { cluster in
            let directory = cluster.directory + "/model"
            let a = TestRows(count: 500, vecSize: 8, seed: 12)
            let b = TestRows(count: 300, vecSize: 8, seed: 13)
            let c = TestRows(count: 200, vecSize: 4, seed: 14)
            for (name, rows) in [("a", a), ("b", b), ("c", c)] {
                _ = try rows.keys.withUnsafeBufferPointer { k in
                    try rows.vectors.withUnsafeBufferPointer { v in
                        try SparseModelFolder.write(path: directory + "/" + name, table: name, keys: k, vectors: v,
                                                    vecSize: rows.vecSize)
                    }
                }
            }
            let json = """
            {
              "supportlonglong": true,
              "fuse_embedding_table": true,
              "volatile_db": {"type": "redis_cluster", "address": "\(cluster.address)", "num_partitions": 5},
              "models": [{
                "model": "m",
                "sparse_files": ["\(directory)/a", "\(directory)/b", "\(directory)/c"],
                "embedding_table_names": ["a", "b", "c"],
                "embedding_vecsize_per_table": [8, 8, 4],
                "maxnum_catfeature_query_per_table_per_sample": [4, 4, 4],
                "default_value_for_each_table": [0.5, 0.5, 0.25],
                "deployed_device_list": [0],
                "max_batch_size": 256
              }]
            }
            """
            let server = try HierarchicalParameterServer(configuration: HPSConfiguration.parse(json: json), backends: [.redisCluster], parallelism: 1)
            #expect(server.volatileStore?.kind == "redis_cluster")
            #expect(server.volatileStore?.tableTags.count == 2)
            let session = try server.session(model: "m")
            for (t, rows) in [a, b, c].enumerated() {
                let vectors = try session.lookup(table: t, keys: rows.keys)
                #expect(bitwiseEqual(vectors, rows.vectors), "table \(t)")
            }
            // A key in no table gets its table's default.
            let absent = try session.lookup(table: 2, keys: [a.keys[0] ^ 0x5555])
            #expect(absent == [0.25, 0.25, 0.25, 0.25])
        }
    }
}
