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

    /// Predicts a batch into the caller's buffer (see `Predictor`): one
    /// lookup, a run per (sample, table) straight into the dense input,
    /// whose every float the lookup writes (vectors or defaults).
    /// - Throws: for a wrong number of keys or predictions, or what the
    ///   lookup refuses (too many keys, a key beyond 32 bits).
    public func predict(keys: UnsafeBufferPointer<Int64>, samples: Int,
                        into predictions: UnsafeMutableBufferPointer<Float>) throws(LookupError) -> LookupCounts {
        try checkBatch(keys: keys.count, samples: samples, predictions: predictions.count)
        let tables = session.model.tableNames.count, k = keysPerSample, dim = vecSize
        guard samples > 0 else { return LookupCounts(tables: tables, tiers: session.tierNames.count) }
        let input = UnsafeMutableBufferPointer<Float>.allocate(capacity: samples * tables * k * dim)
        defer { input.deallocate() }
        var runs: [LookupRun] = []
        runs.reserveCapacity(samples * tables)
        for s in 0..<samples {
            for table in 0..<tables {
                runs.append(LookupRun(member: table, keys: keys.baseAddress! + (table * samples + s) * k, count: k,
                                      output: input.baseAddress! + (s * tables + table) * k * dim))
            }
        }
        let counts = try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in try session.lookup(runs) }
        dense.predict(UnsafeBufferPointer(input), into: predictions)
        return counts
    }
}
