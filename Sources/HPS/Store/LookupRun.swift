/// A run of keys of one member table whose vectors go to one contiguous
/// output region: the unit of a batched lookup.
///
/// - `keys`: `count` keys.
/// - `output`: `count × vecSize` floats; row `i` receives the vector of `keys[i]`.
///
/// The caller owns both buffers and keeps them alive for the call. A request
/// of many runs (for example one run per sample and table, writing straight
/// into the concatenated input of a dense layer) is still one call per tier.
public struct LookupRun: @unchecked Sendable {
    /// The member table of a fused table (0 for a table that is not fused).
    public var member: Int
    /// The first of `count` keys.
    public var keys: UnsafePointer<Int64>
    /// The number of keys.
    public var count: Int
    /// The first of `count × vecSize` output floats.
    public var output: UnsafeMutablePointer<Float>

    /// Creates a run.
    @inlinable
    public init(member: Int, keys: UnsafePointer<Int64>, count: Int, output: UnsafeMutablePointer<Float>) {
        self.member = member
        self.keys = keys
        self.count = count
        self.output = output
    }
}
