/// One shard of a row-wise sharded table: the keys whose hash falls to
/// `index` of `count` shards.
///
/// The owner of a key is `owner(of:shards:)`: SplitMix64's finalizer of the
/// key's 64 bits (as the tiers hold it: an int32 key widened to Int64), modulo
/// the shard count. The finalizer spreads runs of consecutive keys (the
/// usual ids of a vocabulary) evenly over the shards; a key's owner depends
/// on nothing but the key and the count, so a table loads each shard's rows
/// and a lookup routes its keys with the same function, on any host.
public struct RowShard: Sendable, Equatable, Hashable {
    /// This shard, in `0..<count`.
    public let index: Int
    /// The shards of the table, at least 1.
    public let count: Int

    /// Shard `index` of `count`.
    public init(index: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(index), "shard \(index) of \(count)")
        self.index = index
        self.count = count
    }

    /// Whether this shard holds `key`'s row.
    @inlinable
    public func owns(_ key: Int64) -> Bool {
        Self.owner(of: key, shards: count) == index
    }

    /// The shard, in `0..<shards`, that holds `key`'s row.
    @inlinable
    public static func owner(of key: Int64, shards: Int) -> Int {
        guard shards > 1 else { return 0 }
        var z = UInt64(bitPattern: key)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(shards))
    }
}
