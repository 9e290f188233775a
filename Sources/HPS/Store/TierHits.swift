/// What a lookup through a tier chain found where, per member table: the
/// keys each tier answered and the keys no tier holds.
///
/// Counted from the misses alone: a member's hits at a tier are the keys
/// that reached the tier less the keys it missed, so keys found in the top
/// tier cost no work of their own.
public struct TierHits: Sendable, Equatable {
    /// `answered[tier][member]`: keys of the member that the tier answered.
    public var answered: [[Int]]
    /// `missing[member]`: keys of the member that no tier holds.
    public var missing: [Int]

    /// Zero counts for `tiers` tiers of a table of `members` members.
    public init(tiers: Int, members: Int) {
        answered = [[Int]](repeating: [Int](repeating: 0, count: members), count: tiers)
        missing = [Int](repeating: 0, count: members)
    }

    /// Keys answered by each tier, all members together.
    public var perTier: [Int] { answered.map { $0.reduce(0, +) } }
    /// Keys no tier holds, all members together.
    public var totalMissing: Int { missing.reduce(0, +) }
}
