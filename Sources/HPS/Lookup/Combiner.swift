/// How a sparse lookup pools the vectors of one sample's ids, as HPS's
/// SparseLookupLayer does.
public enum Combiner: String, Sendable, CaseIterable {
    /// The sum of the vectors.
    case sum
    /// The sum divided by the number of ids (zeros for a sample with none).
    case mean
    /// The sum divided by the square root of the number of ids.
    case sqrtn

    /// The factor applied to a sample's sum of `count` vectors.
    @inlinable
    public func scale(count: Int) -> Float {
        guard count > 0 else { return 0 }
        switch self {
        case .sum: return 1
        case .mean: return 1 / Float(count)
        case .sqrtn: return 1 / Float(count).squareRoot()
        }
    }
}
