import Glibc
import HPS

/// The model of the update benchmarks: one table `t0` of model `m`, `keys`
/// random vectors of `vecSize` floats written in HugeCTR's format into a
/// folder, and a configuration over it with the stores and update source
/// given as JSON members.
struct OneTableBenchmarkModel {
    /// The table's keys, in file order.
    let keys: [Int64]
    /// The configuration's path.
    let path: String

    /// Writes the table (key i is i × stride + offset) and `hps.json` into `folder`.
    /// - Parameters:
    ///   - stores: the configuration's members beside `models` (`"volatile_db": {…}`, …).
    ///   - keysPerSample: the model's `maxnum_catfeature_query_per_table_per_sample`.
    init(folder: String, keys count: Int, vecSize: Int, stride: Int64, offset: Int64, seed: UInt64, stores: String,
         keysPerSample: Int) throws {
        var random = SplitMix64(seed: seed)
        keys = (0..<count).map { Int64($0) * stride + offset }
        let rows = (0..<(count * vecSize)).map { _ in random.nextFloat(-1, 1) }
        _ = try keys.withUnsafeBufferPointer { k in
            try rows.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: folder + "/t0", table: "t0", keys: k, vectors: v, vecSize: vecSize)
            }
        }
        let json = """
        {"supportlonglong": true, \(stores),
         "models": [{"model": "m", "sparse_files": ["\(folder)/t0"], "embedding_table_names": ["t0"],
                     "embedding_vecsize_per_table": [\(vecSize)], "maxnum_catfeature_query_per_table_per_sample": [\(keysPerSample)],
                     "default_value_for_each_table": [0], "deployed_device_list": [0], "max_batch_size": 1, "gpucache": false}]}
        """
        path = folder + "/hps.json"
        guard let file = fopen(path, "w") else { throw CheckFailure(reason: "cannot write \(path)") }
        fputs(json, file)
        fclose(file)
    }

    /// A hierarchy over the configuration, one thread per lookup.
    func server() throws -> HierarchicalParameterServer {
        try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), backends: Backends.all, parallelism: 1)
    }
}
