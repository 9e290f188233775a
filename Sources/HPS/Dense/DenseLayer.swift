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
                // Sixteen lanes in a fixed order, so every run sums identically.
                var acc = SIMD16<Float>(repeating: 0)
                var i = 0
                while i < vectorized {
                    let x = rowRaw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                    let y = wRaw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD16<Float>.self)
                    acc.addProduct(x, y)
                    i &+= 16
                }
                var sum = acc.sum()
                while i < features {
                    sum += row[i] * w[i]
                    i &+= 1
                }
                output[s] = sum + bias
            }
        }
    }
}
