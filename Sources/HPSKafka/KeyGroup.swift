/// How HugeCTR's producer (`KafkaMessageSink`) spreads a table's keys over
/// the partitions of its topic: a key's group is XXH3-64 of its 8 bytes
/// modulo the number of key groups, and a group's partition is
/// `(group & 0x7fffffff) % partitions`. All keys of one message share a group.
///
/// (HugeCTR's sink hashes the key itself for a one-key post, but the address
/// of its loop variable for a post of several keys, which spreads them by
/// chance; here every key is hashed by value, as the one-key path does.)
public struct KeyGroups: Sendable, Equatable {
    /// The number of key groups (at least 1).
    public let count: Int

    /// `count` key groups.
    public init(count: Int) {
        precondition(count >= 1, "there must be at least one key group")
        self.count = count
    }

    /// The group of `key`.
    @inline(__always)
    public func group(of key: Int64) -> Int {
        Int(Self.xxh3(key) % UInt64(count))
    }

    /// The partition of a group, among `partitions`.
    @inline(__always)
    public static func partition(ofGroup group: Int, partitions: Int32) -> Int32 {
        Int32(truncatingIfNeeded: group & 0x7fff_ffff) % partitions
    }

    /// XXH3-64 (seed 0, the default secret) of the key's 8 little-endian
    /// bytes: xxHash's path for inputs of 4 to 8 bytes.
    @inline(__always)
    static func xxh3(_ key: Int64) -> UInt64 {
        let bits = UInt64(bitPattern: key)
        let low = bits & 0xffff_ffff
        let high = bits >> 32
        // Bytes 8..<16 and 16..<24 of the default secret, read little-endian.
        let bitflip: UInt64 = 0x1cad_21f7_2c81_017c ^ 0xdb97_9083_e96d_d4de
        var h = (high &+ (low << 32)) ^ bitflip
        h ^= h.rotatedLeft(49) ^ h.rotatedLeft(24)
        h &*= 0x9fb2_1c65_1e98_df25
        h ^= (h >> 35) &+ 8
        h &*= 0x9fb2_1c65_1e98_df25
        return h ^ (h >> 28)
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ bits: UInt64) -> UInt64 { (self << bits) | (self >> (64 - bits)) }
}
