import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisCLITests {
    /// The `hps` executable beside this test process's own.
    var hps: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hps").path
    }

    func writeModel(_ directory: String, address: String, rows: TestRows) throws -> String {
        _ = try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: directory + "/t0", table: "t0", keys: k, vectors: v, vecSize: rows.vecSize)
            }
        }
        let json = """
        {"supportlonglong": true,
         "volatile_db": {"type": "redis_cluster", "address": "\(address)"},
         "models": [{"model": "m", "sparse_files": ["\(directory)/t0"], "embedding_table_names": ["t0"],
                     "embedding_vecsize_per_table": [2], "maxnum_catfeature_query_per_table_per_sample": [4],
                     "default_value_for_each_table": [0.5], "deployed_device_list": [0], "max_batch_size": 64}]}
        """
        try json.write(toFile: directory + "/hps.json", atomically: false, encoding: .utf8)
        return directory + "/hps.json"
    }

    @Test("hps lookup serves a redis_cluster configuration")
    func lookupThroughCLI() throws {
        try withCluster { cluster in
            #expect(FileManager.default.isExecutableFile(atPath: hps), "build hps with the tests: swift build --build-tests")
            try FileManager.default.createDirectory(atPath: cluster.directory + "/cli", withIntermediateDirectories: true)
            let rows = TestRows(count: 20, vecSize: 2, seed: 19)
            let config = try writeModel(cluster.directory + "/cli", address: cluster.address, rows: rows)
            let absent = rows.keys[0] ^ 1
            let outcome = TestCluster.run(hps, ["lookup", "--config", config, "--model", "m", "--table", "t0",
                                                "--keys", "\(rows.keys[3]),\(absent)", "--json"])
            #expect(outcome.status == 0, "\(outcome.output)")
            let first = "[\(Double(rows.vectors[6])),\(Double(rows.vectors[7]))]"
            #expect(outcome.output.contains(first + ",[0.5,0.5]]"), "\(outcome.output) lacks \(first)")
        }
    }

    @Test("hps lookup with no cluster says which addresses it tried, in one sentence")
    func clusterDownThroughCLI() throws {
        let directory = NSTemporaryDirectory() + "hps-redis-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try writeModel(directory, address: "127.0.0.1:7196", rows: TestRows(count: 4, vecSize: 2, seed: 20))
        let outcome = TestCluster.run(hps, ["lookup", "--config", config, "--model", "m", "--table", "t0", "--keys", "1"])
        #expect(outcome.status == 1)
        #expect(outcome.output.contains("127.0.0.1:7196") && outcome.output.contains("volatile_db.address"), "\(outcome.output)")
    }
}
