import HPS

/// What one inference returns: `OUTPUT0`'s shape and floats.
public struct InferenceOutput: Sendable, Equatable {
    /// `OUTPUT0`'s shape (`ServedModel.outputShape`).
    public var shape: [Int]
    /// The vectors, table after table, in key order.
    public var vectors: [Float]
}

extension ServedModel {
    /// One inference as every transport runs it: checks the request against the
    /// model, looks the keys up off the cooperative pool, and counts the lookup
    /// (duration, keys per table, tier hits) in `metrics`. The transport counts
    /// the request itself (`ServerMetrics.recordRequest`), since only it knows
    /// when the response is encoded.
    /// - Throws: `InferenceError.invalidInput` or `.lookup`, naming what is wrong.
    func infer(_ request: InferenceRequest, metrics: ServerMetrics) async throws(InferenceError) -> InferenceOutput {
        let batch = try batch(of: request)
        let start = ContinuousClock.now
        let (vectors, counts) = try await BlockingWork.run { () throws(InferenceError) in try self.lookup(batch) }
        metrics.recordLookup(session: session, batch: batch, counts: counts, duration: ContinuousClock.now - start)
        return InferenceOutput(shape: outputShape(batch, floats: vectors.count), vectors: vectors)
    }
}
