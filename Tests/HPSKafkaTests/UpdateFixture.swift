import Foundation
import HPS
import HPSStoreTestSupport

@testable import HPSKafka

/// A model `m` of two tables (`t0` vec size 4, `t1` vec size 3, not fused)
/// in the in-process hash map, written to a temporary folder.
struct UpdateFixture {
    let directory: TemporaryDirectory
    let rows: [RandomRows]
    let server: HierarchicalParameterServer

    /// The Kafka update source, with the Kafka trait (its tests need it).
    static let backends: [StoreBackend] = {
        #if Kafka
        [.kafka]
        #else
        []
        #endif
    }()

    /// The model, with `updateSource` as the configuration's `update_source`
    /// (none when nil) and `supportLongLong` for its keys.
    init(updateSource: String? = nil, filters: String = "[\"m\"]", supportLongLong: Bool = true) throws {
        let directory = try TemporaryDirectory(prefix: "hps-kafka")
        self.directory = directory
        let range: ClosedRange<Int64>? = supportLongLong ? nil : 0...1_000_000
        let rows = [RandomRows(count: 300, vecSize: 4, seed: 11, keyRange: range),
                    RandomRows(count: 300, vecSize: 3, seed: 12, keyRange: range)]
        self.rows = rows
        for (t, table) in rows.enumerated() {
            _ = try table.keys.withUnsafeBufferPointer { k in
                try table.vectors.withUnsafeBufferPointer { v in
                    try SparseModelFolder.write(path: "\(directory.path)/t\(t)", table: "t\(t)", keys: k, vectors: v, vecSize: table.vecSize)
                }
            }
        }
        let source = updateSource.map { ", \"update_source\": \($0)" } ?? ""
        let json = """
        {"supportlonglong": \(supportLongLong), "volatile_db": {"type": "hash_map", "update_filters": \(filters)}\(source),
         "models": [{"model": "m", "sparse_files": ["\(directory.path)/t0", "\(directory.path)/t1"],
                     "embedding_table_names": ["t0", "t1"], "embedding_vecsize_per_table": [4, 3],
                     "maxnum_catfeature_query_per_table_per_sample": [8, 8], "default_value_for_each_table": [0.5, -1],
                     "deployed_device_list": [0], "max_batch_size": 1024, "gpucache": false}]}
        """
        try json.write(toFile: directory.path + "/hps.json", atomically: false, encoding: .utf8)
        server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: directory.path + "/hps.json"),
                                                 backends: Self.backends, parallelism: 1)
    }

    /// The vectors a lookup of `keys` in table `table` returns now.
    func lookup(table: Int, _ keys: [Int64]) throws -> [Float] {
        try server.session(model: "m").lookup(table: table, keys: keys)
    }

    /// New random vectors for `count` keys of table `table` (some held, some new).
    func updates(table: Int, count: Int, seed: UInt64) -> (keys: [Int64], vectors: [Float]) {
        let vecSize = rows[table].vecSize
        var random = SplitMix64(seed: seed)
        let held = rows[table].keys.prefix(count / 2)
        let fresh = (0..<(count - held.count)).map { _ in Int64(random.next() % 1_000_000) + 2_000_000 }
        let keys = Array(held) + fresh
        return (keys, (0..<(keys.count * vecSize)).map { _ in random.nextFloat(-4, 4) })
    }
}
