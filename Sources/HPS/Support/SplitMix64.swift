/// A small, fast, seedable random number generator (SplitMix64), for
/// reproducible test data, benchmarks and random eviction.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    /// Creates a generator from a seed; equal seeds give equal sequences.
    package init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    @inlinable
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A float uniformly in [low, high).
    @inlinable
    package mutating func nextFloat(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) * (1.0 / Float(1 << 24))
    }
}
