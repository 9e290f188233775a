/// Where Redis Cluster places a key: CRC16 of the key, or of its hash tag,
/// modulo 16384.
package enum HashSlot {
    /// The number of hash slots of a Redis Cluster.
    package static let count = 16384

    /// The slot of `key`. If the key holds `{…}` with at least one byte between
    /// the first `{` and the next `}`, only those bytes are hashed (the hash tag),
    /// so keys of one tag share a slot and thus a node.
    package static func slot<C: Collection>(_ key: C) -> Int where C.Element == UInt8, C.Index == Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
           let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return Int(CRC16.checksum(key[(open + 1)..<close])) & (count - 1)
        }
        return Int(CRC16.checksum(key)) & (count - 1)
    }

    /// The slot of a text key.
    package static func slot(_ key: String) -> Int {
        slot(Array(key.utf8))
    }
}
