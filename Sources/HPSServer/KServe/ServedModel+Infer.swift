import HPS
package import NIOCore

/// What one inference returns: `OUTPUT0`'s shape and floats.
package struct InferenceOutput: Sendable, Equatable {
    /// `OUTPUT0`'s shape (`ServedModel.outputShape`).
    package var shape: [Int]
    /// The vectors, table after table, in key order (or the predictions),
    /// as little-endian FP32: the readable bytes.
    package var floats: ByteBuffer
}

extension ServedModel {
    /// One inference as the gRPC transport runs it: checks the request
    /// against the model and looks the keys up through the model's batcher,
    /// which merges it with concurrent requests and counts the lookup
    /// (duration, keys per table, tier hits). The transport counts the
    /// request itself (`ServerMetrics.recordRequest`), since only it knows
    /// when the response is encoded.
    /// - Throws: `InferenceError.invalidInput` or `.lookup`, naming what is wrong.
    func infer(_ request: InferenceRequest, batcher: LookupBatcher) async throws(InferenceError) -> InferenceOutput {
        let batch = try batch(of: request)
        let floats = try await batcher.lookupBinary(batch)
        return InferenceOutput(shape: outputShape(batch, floats: floats.readableBytes / 4), floats: floats)
    }
}
