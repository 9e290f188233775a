import FuzzSupport
@testable import HPS
@testable import HPSServer

/// A served two-table model (vocab 100, dim 4, INT64 keys; table i holds keys
/// [100·i, 100·(i+1)), the default 0 elsewhere), loaded once per process into
/// the in-memory tier, and its tables' rows as read from the files: what the
/// KServe harnesses check their answers against.
package enum FuzzedModel {
    /// The model as the server serves it.
    package static let served: ServedModel = setUp().served
    /// Per table, each key's vector as the model files hold it.
    package static let rows: [[Int64: [Float]]] = setUp().rows

    nonisolated(unsafe) private static var built: (served: ServedModel, rows: [[Int64: [Float]]])?

    private static func setUp() -> (served: ServedModel, rows: [[Int64: [Float]]]) {
        if let built { return built }
        do {
            let directory = try TemporaryDirectory(prefix: "hps-fuzz-kserve")
            // Two tables written in HugeCTR's format, with values of a fixed
            // pseudo-random sequence, and a configuration that serves them.
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            for table in 0..<2 {
                let keys = (0..<100).map { Int64(100 * table + $0) }
                let vectors = (0..<(100 * 4)).map { _ -> Float in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return Float(Int64(state >> 40) - (1 << 23)) / Float(1 << 30)
                }
                try keys.withUnsafeBufferPointer { keys in
                    try vectors.withUnsafeBufferPointer { vectors in
                        _ = try SparseModelFolder.write(path: directory.path + "/table\(table)", table: "table\(table)",
                                                        keys: keys, vectors: vectors, vecSize: 4)
                    }
                }
            }
            let json = """
                {"supportlonglong": true, "models": [{"model": "fuzzed", "sparse_files": ["table0", "table1"],
                 "embedding_table_names": ["table0", "table1"], "embedding_vecsize_per_table": [4, 4],
                 "maxnum_catfeature_query_per_table_per_sample": [26, 26], "default_value_for_each_table": [0.0, 0.0],
                 "deployed_device_list": [0], "max_batch_size": 256, "gpucache": false}]}
                """
            let configuration = try HPSConfiguration.parse(json: json, baseDirectory: directory.path)
            let model = configuration.models[0]
            var rows: [[Int64: [Float]]] = []
            for (table, path) in model.sparseFiles.enumerated() {
                let folder = try SparseModelFolder(path: path.hasPrefix("/") ? path : directory.path + "/" + path, table: model.tableNames[table],
                                                   vecSize: model.vecSizes[table])
                let (keys, vectors) = try folder.readAll()
                var byKey: [Int64: [Float]] = [:]
                for (i, key) in keys.enumerated() { byKey[key] = Array(vectors[(i * folder.vecSize)..<((i + 1) * folder.vecSize)]) }
                rows.append(byKey)
            }
            let parameterServer = try HierarchicalParameterServer(configuration: configuration, parallelism: 1)
            let served = ServedModel(session: try parameterServer.session(model: model.name))
            directory.remove()
            built = (served, rows)
            return (served, rows)
        } catch {
            check(false, "the fuzzed model could not be set up: \(error)")
            fatalError()
        }
    }

    /// Checks a parsed request all the way to its vectors: each input holds as
    /// many values as its shape's product; a request the model
    /// accepts is answered with each key's row (or the default 0 for a key not
    /// in its table), table after table, every element written; one it refuses
    /// is refused with a message.
    package static func checkAnswers(_ request: InferenceRequest) {
        for input in request.inputs {
            check(input.shape.allSatisfy { $0 >= 0 } && input.shape.reduce(1, *) == input.values.count,
                  "input \(input.name) has shape \(input.shape) but \(input.values.count) values")
        }
        let model = served
        let batch: ServedModel.Batch
        do {
            batch = try model.batch(of: request)
        } catch {
            check(!error.description.isEmpty, "a refusal without a message")
            return
        }
        check(batch.totalKeys == batch.keysPerTable.reduce(0) { $0 + $1.count }, "the batch's key count disagrees with its tables")
        let vecSizes = model.session.model.vecSizes
        var output = [Float](repeating: .nan, count: model.outputCount(batch))
        do {
            _ = try output.withUnsafeMutableBufferPointer { try model.lookup(batch, into: $0) }
        } catch {
            check(false, "a checked batch failed its lookup: \(error)")
        }
        var offset = 0
        for (table, keys) in batch.keysPerTable.enumerated() {
            for key in keys {
                let want = rows[table][key] ?? [Float](repeating: 0, count: vecSizes[table])
                let got = output[offset..<(offset + vecSizes[table])]
                check(zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern },
                      "table \(table) key \(key) answered \(Array(got)), its row is \(want)")
                offset += vecSizes[table]
            }
        }
        check(offset == output.count, "the output has \(output.count) floats for \(offset) expected")
    }
}
