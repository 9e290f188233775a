/// A fully connected layer with one output, the seed model's `Dense(1)`:
/// `prediction[s] = bias + Σ_i input[s][i] · weights[i]`.
public struct DenseLayer: Sendable, Equatable {
    /// One weight per input feature.
    public let weights: [Float]
    /// The bias.
    public let bias: Float

    /// Creates a layer from its weights.
    public init(weights: [Float], bias: Float) {
        self.weights = weights
        self.bias = bias
    }

    /// A layer with Glorot-uniform weights, as Keras initializes `Dense`,
    /// drawn from a seeded generator so that runs are repeatable.
    public init(inputs: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let limit = (6 / Float(inputs + 1)).squareRoot()
        weights = (0..<inputs).map { _ in random.nextFloat(-limit, limit) }
        bias = 0
    }

    /// Computes the predictions of a batch.
    /// - Parameters:
    ///   - input: (batch × weights.count) floats, sample after sample.
    ///   - output: (batch) floats.
    public func predict(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) {
        let features = weights.count
        let batch = output.count
        precondition(input.count == batch * features, "dense input holds \(input.count) floats, not \(batch) × \(features)")
        weights.withUnsafeBufferPointer { w in
            let wRaw = UnsafeRawPointer(w.baseAddress!)
            let vectorized = features / 16 * 16
            for s in 0..<batch {
                let row = input.baseAddress! + s * features
                let rowRaw = UnsafeRawPointer(row)
                // Two eight-lane accumulators in a fixed order, so every run sums identically.
                var a0 = SIMD8<Float>(repeating: 0), a1 = SIMD8<Float>(repeating: 0)
                var i = 0
                while i < vectorized {
                    let offset = i &* 4
                    a0 = a0 + rowRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                        * wRaw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                    a1 = a1 + rowRaw.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self)
                        * wRaw.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self)
                    i &+= 16
                }
                let acc = a0 + a1
                var sum: Float = 0
                for lane in 0..<8 { sum += acc[lane] }
                while i < features {
                    sum += row[i] * w[i]
                    i &+= 1
                }
                output[s] = sum + bias
            }
        }
    }
}
