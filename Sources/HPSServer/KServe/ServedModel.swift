package import HPS

/// One model served over KServe v2, of one of two kinds:
///
/// - an HPS model, as Triton's HPS backend serves it: inputs `KEYS` (INT64
///   or INT32, all tables' keys concatenated) and `NUMKEYS` (INT32, keys per
///   table), one FP32 output `OUTPUT0` with the vectors in key order;
/// - a prediction model (the seed notebook's lookups → Dense(1)): one input
///   `KEYS<i>` per table (INT64 or INT32, [batch, keys per sample]), one FP32
///   output `OUTPUT0` of [batch, 1] predictions.
///
/// A model is served from the sessions it is given: an HPS model from its
/// sessions on the GPUs of its `deployed_device_list` (each a replica of the
/// tables, with its GPU cache as L1) or from its CPU session; a prediction
/// model from its predictor's session. Every lookup names the replica it
/// runs on (`LookupBatcher` spreads requests over them).
///
/// Thread safety: `lookup` may run concurrently (the sessions allow it).
package struct ServedModel: Sendable {
    /// The only version served.
    package static let version = "1"
    /// The keys input.
    package static let keysInput = "KEYS"
    /// The keys-per-table input.
    package static let numKeysInput = "NUMKEYS"
    /// The vectors output.
    package static let output = "OUTPUT0"

    /// The sessions the model is served from, one per replica: its sessions
    /// on its GPUs in device order, or its one session on the CPU.
    package let sessions: [LookupSession]
    /// For a prediction model: the lookups → dense head; nil for an HPS model.
    package let prediction: (any Predictor)?
    /// The name served.
    package let name: String

    /// Serves a session as an HPS model, under the model's name.
    package init(session: LookupSession) {
        self.init(sessions: [session])
    }

    /// Serves a model from its replicas, under the model's name: its
    /// sessions on several GPUs (`HierarchicalParameterServer.deviceSessions(model:)`).
    /// - Precondition: at least one session, all of the same model.
    package init(sessions: [LookupSession]) {
        precondition(!sessions.isEmpty, "a served model needs a session")
        precondition(sessions.allSatisfy { $0.model.name == sessions[0].model.name }, "the replicas of one model")
        self.sessions = sessions
        prediction = nil
        name = sessions[0].model.name
    }

    /// Serves a prediction head (on the CPU or a GPU) under `name`.
    package init(prediction: any Predictor, name: String) {
        sessions = [prediction.session]
        self.prediction = prediction
        self.name = name
    }

    /// The first replica's session: it holds the model's configuration,
    /// which every replica shares.
    package var session: LookupSession { sessions[0] }

    /// The devices the model is served from, one per replica (nil: the CPU).
    package var devices: [Int?] { sessions.map(\.device) }

    /// The input of table `table` of a prediction model: `KEYS<table>`.
    package static func keysInput(table: Int) -> String { "KEYS\(table)" }

    /// The vec size shared by all tables, or `nil` when they differ.
    package var commonVecSize: Int? {
        let sizes = Set(session.model.vecSizes)
        return sizes.count == 1 ? sizes.first : nil
    }

    /// The model metadata of the KServe v2 protocol.
    package func metadata() -> JSONValue {
        func tensor(_ name: String, _ datatype: TensorDatatype, _ shape: [Int64]) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("datatype", .string(datatype.rawValue)),
                                ("shape", .array(shape.map { .integer($0) }))]))
        }
        if let prediction {
            let k = Int64(prediction.keysPerSample)
            return .object(JSONObject([
                ("name", .string(name)),
                ("versions", .array([.string(Self.version)])),
                ("platform", .string("hps_dense")),
                ("inputs", .array(session.model.tableNames.indices.map { tensor(Self.keysInput(table: $0), .int64, [-1, k]) })),
                ("outputs", .array([tensor(Self.output, .fp32, [-1, 1])])),
            ]))
        }
        return .object(JSONObject([
            ("name", .string(name)),
            ("versions", .array([.string(Self.version)])),
            ("platform", .string("hps")),
            // As Triton's HPS backend declares them; INT32 keys are accepted too.
            ("inputs", .array([tensor(Self.keysInput, .int64, [-1]), tensor(Self.numKeysInput, .int32, [-1])])),
            ("outputs", .array([tensor(Self.output, .fp32, [-1])])),
        ]))
    }

    /// The model configuration in the form Triton returns for
    /// `/v2/models/<model>/config`, as Triton's HPS backend's `config.pbtxt` declares it.
    package func tritonConfiguration() -> JSONValue {
        func tensor(_ name: String, _ type: String, _ dims: [Int64] = [-1]) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("data_type", .string(type)), ("dims", .array(dims.map { .integer($0) }))]))
        }
        if let prediction {
            return .object(JSONObject([
                ("name", .string(name)),
                ("platform", "hps_dense"),
                ("backend", "hps"),
                ("max_batch_size", .integer(Int64(session.model.maxBatchSize))),
                ("input", .array(session.model.tableNames.indices.map {
                    tensor(Self.keysInput(table: $0), "TYPE_INT64", [Int64(prediction.keysPerSample)])
                })),
                ("output", .array([tensor(Self.output, "TYPE_FP32", [1])])),
                ("parameters", .object(JSONObject([
                    ("embedding_table_names", .string(session.model.tableNames.joined(separator: ","))),
                    ("hps_model", .string(session.model.name)),
                ]))),
            ]))
        }
        return .object(JSONObject([
            ("name", .string(name)),
            ("platform", "hps"),
            ("backend", "hps"),
            ("max_batch_size", 0),
            ("input", .array([tensor(Self.keysInput, "TYPE_INT64"), tensor(Self.numKeysInput, "TYPE_INT32")])),
            ("output", .array([tensor(Self.output, "TYPE_FP32")])),
            ("parameters", .object(JSONObject([
                ("embedding_table_names", .string(session.model.tableNames.joined(separator: ","))),
                ("embedding_vecsize_per_table", .string(session.model.vecSizes.map(String.init).joined(separator: ","))),
                ("max_keys_per_table", .string((0..<session.model.tableNames.count)
                    .map { String(session.model.maxKeysPerLookup(table: $0)) }.joined(separator: ","))),
            ]))),
        ]))
    }

    /// The checked inputs of one request: every table's keys, table after
    /// table in model order, in one array (as KEYS brings them: no copy per table).
    package struct Batch: Sendable, Equatable {
        /// Every table's keys, table after table.
        package var keys: [Int64]
        /// For each table in model order, how many of `keys` are its.
        package var tableKeyCounts: [Int]
        /// Samples of a prediction model's batch (0 for an HPS model).
        package var samples = 0

        /// A batch of checked keys, table after table.
        package init(keys: [Int64], tableKeyCounts: [Int], samples: Int = 0) {
            precondition(tableKeyCounts.reduce(0, +) == keys.count,
                         "the tables' key counts \(tableKeyCounts) do not sum to the \(keys.count) keys")
            self.keys = keys
            self.tableKeyCounts = tableKeyCounts
            self.samples = samples
        }

        /// A batch of checked keys given per table.
        package init(keysPerTable: [[Int64]], samples: Int = 0) {
            self.init(keys: keysPerTable.flatMap { $0 }, tableKeyCounts: keysPerTable.map(\.count), samples: samples)
        }

        /// Keys in all.
        package var totalKeys: Int { keys.count }

        /// Each table's keys as an array of their own.
        package var keysPerTable: [[Int64]] {
            var start = 0
            return tableKeyCounts.map { count in
                defer { start += count }
                return Array(keys[start..<(start + count)])
            }
        }
    }

    /// Checks the inputs and outputs of a request against the model.
    /// - Throws: `InferenceError.invalidInput` naming the input and what is wrong.
    package func batch(of request: InferenceRequest) throws(InferenceError) -> Batch {
        if let prediction { return try predictionBatch(of: request, prediction) }
        var keys: InferenceRequest.Input? = nil
        var numKeys: InferenceRequest.Input? = nil
        for input in request.inputs {
            switch input.name {
            case Self.keysInput: keys = input
            case Self.numKeysInput: numKeys = input
            default:
                throw .invalidInput("model \(name) has no input \"\(input.name)\"; its inputs are KEYS (INT64 or INT32) and NUMKEYS (INT32)")
            }
        }
        guard let keys, let numKeys else {
            throw .invalidInput("model \(name) needs both inputs KEYS (all tables' keys concatenated) and NUMKEYS (keys per table); \(keys == nil ? "KEYS" : "NUMKEYS") is missing")
        }
        for output in request.outputs where output.name != Self.output {
            throw .invalidInput("model \(name) has no output \"\(output.name)\"; its output is OUTPUT0")
        }
        guard keys.shape.count == 1 || (keys.shape.count == 2 && keys.shape[0] == 1) else {
            throw .invalidInput("input KEYS has shape \(keys.shape); it must be [n] (or [1, n])")
        }
        guard numKeys.datatype == .int32 || numKeys.datatype == .int64 else {
            throw .invalidInput("input NUMKEYS has datatype \(numKeys.datatype.rawValue); it must be INT32")
        }
        let tables = session.model.tableNames.count
        guard numKeys.values.count == tables else {
            throw .invalidInput("input NUMKEYS has \(numKeys.values.count) elements but model \(name) has \(tables) tables (\(session.model.tableNames.joined(separator: ", "))); give one count per table")
        }
        var sum = 0
        for (table, count) in numKeys.values.enumerated() {
            guard count >= 0 else {
                throw .invalidInput("NUMKEYS[\(table)] is \(count); key counts must not be negative")
            }
            sum += Int(clamping: count)
            guard sum <= keys.values.count else { break }
        }
        guard sum == keys.values.count else {
            throw .invalidInput("NUMKEYS \(numKeys.values) sums to \(numKeys.values.reduce(0, &+)) but KEYS has \(keys.values.count) keys; they must be equal")
        }
        return Batch(keys: keys.values, tableKeyCounts: numKeys.values.map { Int($0) })
    }

    /// The floats of the output of `batch`: (keys × vec size) summed over the
    /// tables for an HPS model, one prediction per sample for a prediction model.
    package func outputCount(_ batch: Batch) -> Int {
        if prediction != nil { return batch.samples }
        let vecSizes = session.model.vecSizes
        var total = 0
        for (table, count) in batch.tableKeyCounts.enumerated() { total += count * vecSizes[table] }
        return total
    }

    /// Looks up a checked batch (and, for a prediction model, predicts it)
    /// on one replica: blocking work (CPU, or a wait on a network, a disk or
    /// a GPU when the session's `mayBlock` is true); run it off the event loop.
    /// - Parameter replica: the index in `sessions` of the session to use.
    /// - Returns: the output's floats — for an HPS model (total keys × vec size)
    ///   floats, table after table; for a prediction model (samples)
    ///   predictions — and what the lookup found where.
    package func lookup(_ batch: Batch, replica: Int = 0) throws(InferenceError) -> (vectors: [Float], counts: LookupCounts) {
        var vectors = [Float](repeating: 0, count: outputCount(batch))
        let counts = try vectors.withUnsafeMutableBufferPointer { (output) throws(InferenceError) -> LookupCounts in
            try lookup(batch, into: output, replica: replica)
        }
        return (vectors, counts)
    }

    /// `lookup(_:replica:)` into the caller's buffer.
    /// - Parameter output: `outputCount(batch)` floats, all of which are
    ///   written when the call returns (vectors, defaults or predictions);
    ///   after a throw their contents are unspecified.
    package func lookup(_ batch: Batch, into output: UnsafeMutableBufferPointer<Float>,
                       replica: Int = 0) throws(InferenceError) -> LookupCounts {
        try lookup([batch], into: output, replica: replica)
    }

    /// Looks up several checked batches as one lookup on one replica (one
    /// store lookup per fusion group for all of them, one prediction for all
    /// their samples), each batch's output in its own region of `output`,
    /// batch after batch: the floats `lookup(_:replica:)` returns for each
    /// batch alone, with no array of the merged output to split.
    /// - Parameter output: the batches' `outputCount` floats summed, all of
    ///   which are written when the call returns; after a throw their
    ///   contents are unspecified.
    /// - Throws: what the lookup refuses, for all the batches together (more
    ///   keys for a table than its limit, more samples than max_batch_size).
    package func lookup(_ batches: [Batch], into output: UnsafeMutableBufferPointer<Float>,
                       replica: Int = 0) throws(InferenceError) -> LookupCounts {
        precondition(output.count == batches.reduce(0) { $0 + outputCount($1) },
                     "the output holds \(output.count) floats, not the batches' \(batches.reduce(0) { $0 + outputCount($1) })")
        if let prediction {
            // The samples of merged batches are batch after batch, and so are their predictions.
            let merged = batches.count == 1 ? batches[0] : Batch(merging: batches)
            do throws(LookupError) {
                return try merged.keys.withUnsafeBufferPointer { (keys) throws(LookupError) in
                    try prediction.predict(keys: keys, samples: merged.samples, into: output)
                }
            } catch {
                throw .lookup(error)
            }
        }
        // One buffer of keys, batch after batch and table after table (a
        // lone batch's own keys, no copy), and one run per batch and table,
        // whose rows go straight to that batch's place.
        let vecSizes = session.model.vecSizes
        var flatKeys = batches.count == 1 ? batches[0].keys : []
        if batches.count > 1 {
            flatKeys.reserveCapacity(batches.reduce(0) { $0 + $1.totalKeys })
            for batch in batches { flatKeys += batch.keys }
        }
        do throws(LookupError) {
            return try flatKeys.withUnsafeBufferPointer { (keys) throws(LookupError) -> LookupCounts in
                var runs: [LookupRun] = []
                runs.reserveCapacity(batches.count * vecSizes.count)
                var keyOffset = 0, floatOffset = 0
                for batch in batches {
                    for (table, count) in batch.tableKeyCounts.enumerated() where count > 0 {
                        runs.append(LookupRun(member: table, keys: keys.baseAddress! + keyOffset, count: count,
                                              output: output.baseAddress! + floatOffset))
                        keyOffset += count
                        floatOffset += count * vecSizes[table]
                    }
                }
                return try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in
                    try sessions[replica].lookup(runs)
                }
            }
        } catch {
            throw .lookup(error)
        }
    }

    /// The shape of `OUTPUT0`: [keys, vec size] when all tables share a vec
    /// size, else [floats] (the vectors of differing sizes laid end to end);
    /// [samples, 1] for a prediction model.
    package func outputShape(_ batch: Batch, floats: Int) -> [Int] {
        if prediction != nil { return [batch.samples, 1] }
        if let vecSize = commonVecSize { return [batch.totalKeys, vecSize] }
        return [floats]
    }

    /// A prediction model's inputs: `KEYS<i>` for every table, all of shape
    /// [batch, keys per sample] (or [keys per sample] for one sample).
    private func predictionBatch(of request: InferenceRequest, _ prediction: any Predictor) throws(InferenceError) -> Batch {
        let tables = session.model.tableNames.count, k = prediction.keysPerSample
        let names = (0..<tables).map(Self.keysInput(table:))
        var keysPerTable = [[Int64]?](repeating: nil, count: tables)
        var samples: Int? = nil
        for input in request.inputs {
            guard let table = names.firstIndex(of: input.name) else {
                throw .invalidInput("model \(name) has no input \"\(input.name)\"; its inputs are \(names.joined(separator: ", ")) (INT64 or INT32, [batch, \(k)])")
            }
            guard input.datatype == .int64 || input.datatype == .int32 else {
                throw .invalidInput("input \(input.name) has datatype \(input.datatype.rawValue); it must be INT64 or INT32")
            }
            let shapeSamples: Int
            switch input.shape.count {
            case 1 where input.shape[0] == k: shapeSamples = 1
            case 2 where input.shape[1] == k: shapeSamples = input.shape[0]
            default:
                throw .invalidInput("input \(input.name) has shape \(input.shape); it must be [batch, \(k)]: \(k) keys per sample")
            }
            if let samples, samples != shapeSamples {
                throw .invalidInput("input \(input.name) has \(shapeSamples) samples but another input has \(samples); every input needs the same batch")
            }
            samples = shapeSamples
            keysPerTable[table] = input.values
        }
        for output in request.outputs where output.name != Self.output {
            throw .invalidInput("model \(name) has no output \"\(output.name)\"; its output is OUTPUT0")
        }
        let missing = (0..<tables).filter { keysPerTable[$0] == nil }.map { names[$0] }
        guard missing.isEmpty, let samples else {
            throw .invalidInput("model \(name) needs one input per table, \(names.joined(separator: ", ")); missing: \(missing.joined(separator: ", "))")
        }
        guard samples <= session.model.maxBatchSize else {
            throw .invalidInput("the batch has \(samples) samples but model \(name) takes at most \(session.model.maxBatchSize) (max_batch_size)")
        }
        var keys: [Int64] = []
        keys.reserveCapacity(samples * k * tables)
        for tableKeys in keysPerTable { keys += tableKeys! }
        return Batch(keys: keys, tableKeyCounts: [Int](repeating: samples * k, count: tables), samples: samples)
    }
}
