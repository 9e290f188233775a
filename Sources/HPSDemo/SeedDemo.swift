package import HPS
/// The seed notebook, reproduced: a model of one lookup per table → concat →
/// Dense(1), run for `iterations` batches unfused and fused on the same
/// inputs, timed per batch, with both runs' predictions compared.
package struct SeedDemo: Sendable {
    /// Timings of one variant.
    package struct Timing: Sendable, Equatable {
        /// Seconds for all timed iterations.
        package var elapsedSeconds: Double
        /// Median per-batch time, microseconds (lookup, concat and dense).
        package var p50Microseconds: Double
        /// 99th-percentile per-batch time, microseconds.
        package var p99Microseconds: Double
        /// Median time of the lookups alone, microseconds.
        package var lookupP50Microseconds: Double

        /// Creates timings.
        package init(elapsedSeconds: Double, p50Microseconds: Double, p99Microseconds: Double, lookupP50Microseconds: Double) {
            self.elapsedSeconds = elapsedSeconds
            self.p50Microseconds = p50Microseconds
            self.p99Microseconds = p99Microseconds
            self.lookupP50Microseconds = lookupP50Microseconds
        }

        /// The fields as the CLI's `--json` prints them.
        package var jsonValue: JSONValue {
            .object(JSONObject([
                ("elapsed_seconds", .double(elapsedSeconds)),
                ("p50_us", .double(p50Microseconds)),
                ("p99_us", .double(p99Microseconds)),
                ("lookup_p50_us", .double(lookupP50Microseconds)),
            ]))
        }
    }

    /// What a run measured and checked.
    package struct Result: Sendable, Equatable {
        /// Where the lookups ran (`cpu`).
        package var device: String
        /// The model without table fusion.
        package var unfused: Timing
        /// The model with table fusion.
        package var fused: Timing
        /// Unfused elapsed time over fused elapsed time.
        package var speedup: Double
        /// Whether both variants gave bit-identical predictions for every batch.
        package var predictionsMatch: Bool
        /// Whether the first batch's looked-up vectors equal the model files'
        /// rows (as the model's `vector_storage` stores them).
        package var vectorsMatchFiles: Bool
        /// With a `vector_storage` other than fp32: the largest |prediction −
        /// the fp32 model's prediction| over every batch (on the CPU).
        package var predictionDifference: Double?
        /// Threads per lookup.
        package var threads: Int
        /// Batches timed.
        package var iterations: Int

        /// Creates a result.
        package init(device: String, unfused: Timing, fused: Timing, speedup: Double, predictionsMatch: Bool,
                    vectorsMatchFiles: Bool, threads: Int, iterations: Int) {
            self.device = device
            self.unfused = unfused
            self.fused = fused
            self.speedup = speedup
            self.predictionsMatch = predictionsMatch
            self.vectorsMatchFiles = vectorsMatchFiles
            self.threads = threads
            self.iterations = iterations
        }

        /// The object the CLI's `--json` prints.
        package var jsonValue: JSONValue {
            .object(JSONObject([
                ("device", .string(device)),
                ("iterations", .integer(Int64(iterations))),
                ("threads", .integer(Int64(threads))),
                ("unfused", unfused.jsonValue),
                ("fused", fused.jsonValue),
                ("speedup", .double(speedup)),
                ("predictions_match", .bool(predictionsMatch)),
                ("vectors_match_files", .bool(vectorsMatchFiles)),
            ] + (predictionDifference.map { [("prediction_difference_from_fp32", JSONValue.double($0))] } ?? [])))
        }
    }

    /// The model's sizes.
    package var model: SeedModel
    /// Batches timed after one warm-up batch.
    package var iterations: Int
    /// Threads per lookup.
    package var threads: Int

    /// Creates a demo.
    package init(model: SeedModel = SeedModel(), iterations: Int = 100, threads: Int = availableCores) {
        self.model = model
        self.iterations = iterations
        self.threads = threads
    }

    /// Runs the demo over the model in `directory` (written by `SeedModel.write`).
    package func run(directory: String) throws -> Result {
        guard iterations >= 1 else { throw ToolFailure("--iterations must be at least 1, not \(iterations)") }
        var configuration = try HPSConfiguration.load(path: joinPath(directory, "hps.json"))
        let fusedServer = try HierarchicalParameterServer(configuration: configuration, parallelism: threads)
        configuration.fuseEmbeddingTable = false
        let unfusedServer = try HierarchicalParameterServer(configuration: configuration, parallelism: threads)
        let fusedSession = try fusedServer.session(model: model.modelName)
        let unfusedSession = try unfusedServer.session(model: model.modelName)

        var random = SplitMix64(seed: model.seed ^ 0xBA7C_4E5)
        let batches = (0...iterations).map { _ in model.batch(&random) }
        let dense = model.denseHead

        let unfused = try Variant(model: model, session: unfusedSession, dense: dense, fused: false)
        let fusedVariant = try Variant(model: model, session: fusedSession, dense: dense, fused: true)
        let unfusedTiming = try unfused.time(batches)
        let fusedTiming = try fusedVariant.time(batches)

        let vectorsMatch = try Self.check(batches[0], denseInput: fusedVariant.firstDenseInput, model: model,
                                          directory: directory)
        var result = Result(device: "cpu", unfused: unfusedTiming, fused: fusedTiming,
                            speedup: unfusedTiming.elapsedSeconds / fusedTiming.elapsedSeconds,
                            predictionsMatch: unfused.predictions == fusedVariant.predictions,
                            vectorsMatchFiles: vectorsMatch, threads: threads, iterations: iterations)
        if model.vectorStorage != .fp32 {
            result.predictionDifference = try Self.predictionDifference(fusedVariant.predictions, batches: batches,
                                                                        model: model, directory: directory, threads: threads)
        }
        return result
    }

    /// The largest |prediction − the fp32 model's| over `batches`, the fp32
    /// model being the same files served with vector_storage fp32.
    package static func predictionDifference(_ predictions: [[Float]], batches: [[[Int64]]], model: SeedModel,
                                             directory: String, threads: Int) throws -> Double {
        var configuration = try HPSConfiguration.load(path: joinPath(directory, "hps.json"))
        for index in configuration.models.indices { configuration.models[index].vectorStorage = .fp32 }
        let server = try HierarchicalParameterServer(configuration: configuration, parallelism: threads)
        var exact = model
        exact.vectorStorage = .fp32
        let variant = try Variant(model: exact, session: try server.session(model: model.modelName), dense: model.denseHead,
                                  fused: true)
        _ = try variant.time(batches)
        var largest = 0.0
        for (batch, exactBatch) in zip(predictions, variant.predictions) {
            for (p, q) in zip(batch, exactBatch) { largest = max(largest, abs(Double(p) - Double(q))) }
        }
        return largest
    }

    /// Compares a batch's dense input (the concatenated layout) with vectors
    /// read straight from the files.
    package static func check(_ batch: [[Int64]], denseInput: [Float], model: SeedModel, directory: String) throws -> Bool {
        let dim = model.dim, k = model.keysPerSample
        for table in 0..<model.tables {
            let folder = try SparseModelFolder(path: joinPath(directory, "embeddings/table\(table)"),
                                               table: "table\(table)", vecSize: dim)
            var (keys, vectors) = try folder.readAll()
            if model.vectorStorage != .fp32 {
                // What the tiers hold: each row quantized and decoded.
                let codec = VectorCodec(storage: model.vectorStorage, dim: dim)
                vectors = try vectors.withUnsafeBufferPointer { rows in
                    try EncodedRows(rows.baseAddress!, count: keys.count, codec: codec, table: folder.table) { keys[$0] }.decoded()
                }
            }
            var rowOf: [Int64: Int] = [:]
            for (row, key) in keys.enumerated() { rowOf[key] = row }
            for s in 0..<model.batchSize {
                for j in 0..<k {
                    let key = batch[table][s * k + j]
                    let out = ((s * model.tables + table) * k + j) * dim
                    guard let row = rowOf[key] else { return false }
                    for d in 0..<dim where denseInput[out + d] != vectors[row * dim + d] { return false }
                }
            }
        }
        return true
    }

    /// One of the two models: its buffers and its timed loop.
    final class Variant {
        let model: SeedModel
        let session: LookupSession
        let dense: DenseLayer
        let fused: Bool
        var predictions: [[Float]] = []
        var firstDenseInput: [Float] = []

        init(model: SeedModel, session: LookupSession, dense: DenseLayer, fused: Bool) throws {
            self.model = model
            self.session = session
            self.dense = dense
            self.fused = fused
        }

        /// Runs batch 0 as a warm-up and times the others.
        func time(_ batches: [[[Int64]]]) throws -> Timing {
            let t = model.tables, k = model.keysPerSample, dim = model.dim, b = model.batchSize
            let perTable = b * k * dim
            var denseInput = [Float](repeating: .nan, count: b * t * k * dim)
            var tableOutputs = [[Float]](repeating: [Float](repeating: .nan, count: perTable), count: fused ? 0 : t)
            var batchTimes: [Double] = [], lookupTimes: [Double] = []
            var total = Duration.zero
            for (index, batch) in batches.enumerated() {
                var prediction = [Float](repeating: 0, count: b)
                let start = ContinuousClock.now
                if fused {
                    // One call: a run per (sample, table) straight into the dense input.
                    try denseInput.withUnsafeMutableBufferPointer { out in
                        var runs: [LookupRun] = []
                        runs.reserveCapacity(b * t)
                        try withKeyPointers(batch) { keys in
                            for s in 0..<b {
                                for table in 0..<t {
                                    runs.append(LookupRun(member: table, keys: keys[table] + s * k, count: k,
                                                          output: out.baseAddress! + (s * t + table) * k * dim))
                                }
                            }
                            try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in _ = try session.lookup(runs) }
                        }
                    }
                } else {
                    // One call per table, as one lookup layer per table makes them.
                    for table in 0..<t {
                        try batch[table].withUnsafeBufferPointer { keys in
                            try tableOutputs[table].withUnsafeMutableBufferPointer { out in
                                let run = [LookupRun(member: table, keys: keys.baseAddress!, count: keys.count, output: out.baseAddress!)]
                                try run.withUnsafeBufferPointer { (run) throws(LookupError) in _ = try session.lookup(run) }
                            }
                        }
                    }
                }
                let looked = ContinuousClock.now
                if !fused {
                    // tf.concat of the reshaped lookups.
                    denseInput.withUnsafeMutableBufferPointer { out in
                        for table in 0..<t {
                            tableOutputs[table].withUnsafeBufferPointer { src in
                                for s in 0..<b {
                                    (out.baseAddress! + (s * t + table) * k * dim)
                                        .update(from: src.baseAddress! + s * k * dim, count: k * dim)
                                }
                            }
                        }
                    }
                }
                denseInput.withUnsafeBufferPointer { input in
                    prediction.withUnsafeMutableBufferPointer { dense.predict(input, into: $0) }
                }
                let end = ContinuousClock.now
                if index == 0 {
                    firstDenseInput = denseInput
                } else {
                    total += end - start
                    batchTimes.append((end - start).microseconds)
                    lookupTimes.append((looked - start).microseconds)
                }
                predictions.append(prediction)
            }
            return Timing(elapsedSeconds: total.seconds, p50Microseconds: percentile(batchTimes, 0.5),
                          p99Microseconds: percentile(batchTimes, 0.99),
                          lookupP50Microseconds: percentile(lookupTimes, 0.5))
        }
    }
}

/// Runs `body` with a base pointer for each table's key array.
package func withKeyPointers<R>(_ keys: [[Int64]], _ body: ([UnsafePointer<Int64>]) throws -> R) rethrows -> R {
    var pointers: [UnsafePointer<Int64>] = []
    func nest(_ i: Int) throws -> R {
        if i == keys.count { return try body(pointers) }
        return try keys[i].withUnsafeBufferPointer { buffer in
            pointers.append(buffer.baseAddress!)
            return try nest(i + 1)
        }
    }
    return try nest(0)
}
