/// A prediction head over one session's lookups: each sample's keys of every
/// table looked up and a dense layer over the vectors, one prediction per
/// sample. `PredictionModel` runs it on the CPU; `HPSCUDA`'s
/// `GPUPredictionModel` runs the same head on the session's GPU. The server
/// serves either through this protocol, so it needs no GPU module.
///
/// Thread safety: `predict` may run concurrently.
public protocol Predictor: Sendable {
    /// The session whose tables are looked up (its `device` says where the head runs).
    var session: LookupSession { get }
    /// Keys per sample and table.
    var keysPerSample: Int { get }

    /// Predicts a batch into the caller's buffer.
    /// - Parameters:
    ///   - keys: every table's keys, table after table in model order; each
    ///     table's (samples × keysPerSample) keys sample after sample.
    ///   - samples: the batch size.
    ///   - predictions: (samples) floats, all written when the call returns.
    /// - Returns: what the lookup found where.
    /// - Throws: for a wrong number of keys or predictions, or what the
    ///   lookup refuses (too many keys, a key beyond 32 bits, a device that fails).
    func predict(keys: UnsafeBufferPointer<Int64>, samples: Int,
                 into predictions: UnsafeMutableBufferPointer<Float>) throws(LookupError) -> LookupCounts
}

extension Predictor {
    /// Predicts a batch.
    /// - Parameters:
    ///   - keys: for each table, (samples × keysPerSample) keys, sample after sample.
    ///   - samples: the batch size.
    /// - Returns: (samples) predictions, and what the lookup found where.
    /// - Throws: for a wrong number of keys, or what the lookup refuses
    ///   (too many keys, a key beyond 32 bits, a device that fails).
    public func predict(keys: [[Int64]], samples: Int) throws(LookupError) -> (predictions: [Float], counts: LookupCounts) {
        let tables = session.model.tableNames.count
        guard keys.count == tables else {
            throw .shape(reason: "model \(session.model.name) has \(tables) tables but keys were given for \(keys.count)")
        }
        for (table, tableKeys) in keys.enumerated() where tableKeys.count != samples * keysPerSample {
            throw .shape(reason: "table \(session.model.tableNames[table]) needs \(samples) samples × \(keysPerSample) keys, not \(tableKeys.count)")
        }
        let flat = keys.flatMap { $0 }
        var predictions = [Float](repeating: 0, count: samples)
        let counts = try flat.withUnsafeBufferPointer { (flat) throws(LookupError) in
            try predictions.withUnsafeMutableBufferPointer { (out) throws(LookupError) in
                try predict(keys: flat, samples: samples, into: out)
            }
        }
        return (predictions, counts)
    }

    /// Checks a flat batch's sizes against the model: `keys` holds every
    /// table's (samples × keysPerSample) keys and `predictions` one float per sample.
    /// - Throws: `LookupError.shape` naming what differs.
    public func checkBatch(keys: Int, samples: Int, predictions: Int) throws(LookupError) {
        let tables = session.model.tableNames.count
        guard samples >= 0, keys == tables * samples * keysPerSample else {
            throw .shape(reason: "model \(session.model.name) needs \(tables) tables × \(samples) samples × \(keysPerSample) keys, not \(keys) keys")
        }
        guard predictions == samples else {
            throw .shape(reason: "the predictions buffer holds \(predictions) floats but the batch has \(samples) samples")
        }
    }
}
