package import HPS
/// The seed notebook's model (hps_table_fusion_demo): `tables` tables of
/// `vocab` keys each, table i holding keys [i·vocab, (i+1)·vocab), vectors of
/// `dim` floats, queried by `batchSize` samples of `keysPerSample` keys per
/// table, and its HPS configuration.
package struct SeedModel: Sendable, Equatable {
    /// How the vectors are filled.
    package enum Values: String, Sendable, CaseIterable {
        /// Seeded random values in [-0.05, 0.05), distinct per key, so that a
        /// wrong vector changes the predictions.
        case random
        /// 0.00025 in every element, as the notebook writes them.
        case notebook
    }

    /// Number of tables.
    package var tables = 8
    /// Keys per table.
    package var vocab = 10_000
    /// Floats per vector.
    package var dim = 128
    /// Samples per batch, and the model's max_batch_size.
    package var batchSize = 256
    /// Keys per sample and table (the notebook's NUM_QUERY_KEY).
    package var keysPerSample = 26
    /// The deployment's key type (the notebook uses int32 keys).
    package var keyType: KeyType = .int32
    /// How the vectors are filled.
    package var values: Values = .random
    /// The seed of the vectors and of the dense layer.
    package var seed: UInt64 = 2023
    /// How the tiers store the vectors (`vector_storage`, written to hps.json when not fp32).
    package var vectorStorage: VectorStorage = .fp32

    /// Creates the notebook's sizes.
    package init() {}

    /// The model's name, as the notebook names it.
    package var modelName: String { "\(tables)_table" }

    /// The notebook's `Dense(1)` head over the concatenated lookups
    /// (`tables × keysPerSample × dim` inputs), its weights drawn from `seed`.
    package var denseHead: DenseLayer { DenseLayer(inputs: tables * keysPerSample * dim, seed: seed) }

    /// Checks the sizes.
    package func validate() throws(LookupError) {
        for (name, value) in [("tables", tables), ("vocab", vocab), ("dim", dim), ("batch-size", batchSize),
                              ("keys-per-sample", keysPerSample)] where value < 1 {
            throw .shape(reason: "--\(name) must be at least 1, not \(value)")
        }
        if keyType == .int32 && Int64(tables) * Int64(vocab) - 1 > Int64(UInt32.max) {
            throw .shape(reason: "--tables \(tables) × --vocab \(vocab) keys do not fit in 32 bits; use --key-type int64")
        }
    }

    /// Writes the tables under `directory/embeddings/table<i>` and the
    /// configuration to `directory/hps.json`.
    /// - Returns: the configuration's path.
    @discardableResult
    package func write(to directory: String) throws -> String {
        try validate()
        try makeDirectories(directory)
        for table in 0..<tables {
            let writer = try SparseModelFolder.Writer(path: joinPath(directory, "embeddings/table\(table)"),
                                                      table: "table\(table)", vecSize: dim)
            var random = SplitMix64(seed: seed &+ UInt64(table) &* 0x1_0000_0001)
            try writer.appendGenerated(count: vocab) { start, keys, vectors in
                for i in keys.indices {
                    keys[i] = Int64(table) * Int64(vocab) + Int64(start + i)
                    for d in 0..<dim {
                        vectors[i * dim + d] = values == .notebook ? 0.00025 : random.nextFloat(-0.05, 0.05)
                    }
                }
            }
            _ = try writer.finish()
        }
        let path = joinPath(directory, "hps.json")
        let file = try OpenFile(writing: path)
        let text = Array((configurationJSON().serialized(pretty: true) + "\n").utf8)
        try text.withUnsafeBytes { try file.write($0.baseAddress!, count: $0.count) }
        try file.sync()
        return path
    }

    /// The configuration, as the notebook writes it (with fusion on and the
    /// default value given for every table).
    package func configurationJSON() -> JSONValue {
        let names = (0..<tables).map { "table\($0)" }
        let storage: [(String, JSONValue)] = vectorStorage == .fp32 ? [] : [("vector_storage", .string(vectorStorage.rawValue))]
        let model: [(String, JSONValue)] = storage + [
            ("model", .string(modelName)),
            ("sparse_files", .array(names.map { .string("embeddings/\($0)") })),
            ("num_of_worker_buffer_in_pool", .integer(Int64(tables))),
            ("embedding_table_names", .array(names.map { .string($0) })),
            ("embedding_vecsize_per_table", .array(Array(repeating: .integer(Int64(dim)), count: tables))),
            ("maxnum_catfeature_query_per_table_per_sample", .array(Array(repeating: .integer(Int64(keysPerSample)), count: tables))),
            ("default_value_for_each_table", .array(Array(repeating: .double(0.0), count: tables))),
            ("deployed_device_list", .array([.integer(0)])),
            ("max_batch_size", .integer(Int64(batchSize))),
            ("cache_refresh_percentage_per_iteration", .double(1.0)),
            ("hit_rate_threshold", .double(1.0)),
            ("gpucacheper", .double(1.0)),
            ("gpucache", .bool(true)),
            ("embedding_cache_type", .string("dynamic")),
            ("use_context_stream", .bool(true)),
        ]
        return .object(JSONObject([
            ("supportlonglong", .bool(keyType == .int64)),
            ("fuse_embedding_table", .bool(true)),
            ("models", .array([.object(JSONObject(model))])),
        ]))
    }

    /// Draws the keys of one batch: for each table, (batchSize × keysPerSample)
    /// keys uniformly from the table's range, as the notebook's inputs.
    package func batch(_ random: inout SplitMix64) -> [[Int64]] {
        (0..<tables).map { table in
            let base = Int64(table) * Int64(vocab)
            return (0..<(batchSize * keysPerSample)).map { _ in base + Int64(random.next() % UInt64(vocab)) }
        }
    }
}
