/// The hash that places a key in a partition and a slot, shared by the CPU
/// hash map and the GPU tables (whose kernels compute the same function).
///
/// A fused table holds several member tables; the member index is mixed into
/// the hash and kept in the slot, so equal keys of two members never meet.
package enum KeyHash {
    /// Mixes `key` and `member` into 64 well-spread bits (the murmur3 finalizer).
    @inlinable @inline(__always)
    package static func hash(_ key: Int64, member: Int) -> UInt64 {
        var h = UInt64(bitPattern: key) &+ UInt64(truncatingIfNeeded: member) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// The partition of a hash among `count` partitions (high 32 bits, multiply-shift).
    @inlinable @inline(__always)
    package static func partition(_ h: UInt64, count: Int) -> Int {
        Int(truncatingIfNeeded: ((h >> 32) &* UInt64(truncatingIfNeeded: count)) >> 32)
    }
}
