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

    /// Predicts a batch.
    /// - Parameters:
    ///   - keys: for each table, (samples × keysPerSample) keys, sample after sample.
    ///   - samples: the batch size.
    /// - Returns: (samples) predictions, and what the lookup found where.
    /// - Throws: for a wrong number of keys, or what the lookup refuses
    ///   (too many keys, a key beyond 32 bits, a device that fails).
    func predict(keys: [[Int64]], samples: Int) throws(LookupError) -> (predictions: [Float], counts: LookupCounts)
}
