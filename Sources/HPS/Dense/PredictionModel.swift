/// The seed notebook's model as one call: a lookup per table of each
/// sample's keys, the vectors concatenated (sample, then table, then key) and
/// `Dense(1)` over them, one prediction per sample.
///
/// Thread safety: `predict` may run concurrently (the session allows it).
public struct PredictionModel: Predictor {
    /// The session whose tables are looked up; every table shares one vec size.
    public let session: LookupSession
    /// The dense layer: `tables × keysPerSample × vecSize` weights.
    public let dense: DenseLayer
    /// Keys per sample and table.
    public let keysPerSample: Int

    /// A model over `session`'s tables.
    /// - Throws: `LookupError.shape` when the tables' vec sizes differ or the
    ///   dense layer's width is not `tables × keysPerSample × vecSize`.
    public init(session: LookupSession, dense: DenseLayer, keysPerSample: Int) throws(LookupError) {
        let sizes = Set(session.model.vecSizes)
        guard sizes.count == 1, let vecSize = sizes.first else {
            throw .shape(reason: "a prediction model needs tables of one vec size, but model \(session.model.name) has \(session.model.vecSizes)")
        }
        let width = session.model.tableNames.count * keysPerSample * vecSize
        guard dense.weights.count == width else {
            throw .shape(reason: "the dense layer has \(dense.weights.count) weights but \(session.model.tableNames.count) tables × \(keysPerSample) keys × vec \(vecSize) give \(width) inputs")
        }
        self.session = session
        self.dense = dense
        self.keysPerSample = keysPerSample
    }

    /// Floats per vector.
    public var vecSize: Int { session.model.vecSizes[0] }

    /// Predicts a batch.
    /// - Parameters:
    ///   - keys: for each table, (samples × keysPerSample) keys, sample after sample.
    ///   - samples: the batch size.
    /// - Returns: (samples) predictions, and what the lookup found where.
    /// - Throws: for a wrong number of keys, or what the lookup refuses (too many keys, a key beyond 32 bits).
    public func predict(keys: [[Int64]], samples: Int) throws(LookupError) -> (predictions: [Float], counts: LookupCounts) {
        let tables = session.model.tableNames.count, k = keysPerSample, dim = vecSize
        guard keys.count == tables else {
            throw .shape(reason: "model \(session.model.name) has \(tables) tables but keys were given for \(keys.count)")
        }
        for (table, tableKeys) in keys.enumerated() where tableKeys.count != samples * k {
            throw .shape(reason: "table \(session.model.tableNames[table]) needs \(samples) samples × \(k) keys, not \(tableKeys.count)")
        }
        var input = [Float](repeating: 0, count: samples * tables * k * dim)
        var predictions = [Float](repeating: 0, count: samples)
        let flat = keys.flatMap { $0 }
        let counts = try flat.withUnsafeBufferPointer { (flat) throws(LookupError) -> LookupCounts in
            try input.withUnsafeMutableBufferPointer { (out) throws(LookupError) -> LookupCounts in
                // One call: a run per (sample, table) straight into the dense input.
                var runs: [LookupRun] = []
                runs.reserveCapacity(samples * tables)
                for s in 0..<samples {
                    for table in 0..<tables {
                        runs.append(LookupRun(member: table, keys: flat.baseAddress! + (table * samples + s) * k, count: k,
                                              output: out.baseAddress! + (s * tables + table) * k * dim))
                    }
                }
                return try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in try session.lookup(runs) }
            }
        }
        input.withUnsafeBufferPointer { input in
            predictions.withUnsafeMutableBufferPointer { dense.predict(input, into: $0) }
        }
        return (predictions, counts)
    }
}
