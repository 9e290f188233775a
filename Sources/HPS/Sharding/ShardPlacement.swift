/// Where a sharded model's shards live and, for `table_wise` sharding,
/// which shard holds each fusion group.
///
/// Shard s lives on `devices[s]`, the model's devices taken in turn
/// (`effectiveDevices[s % effectiveDevices.count]`). `table_wise` places the
/// groups largest first, each on the shard holding the fewest bytes so far
/// (the lowest index on a tie), which keeps the largest shard within the
/// largest group of the best balance; the placement depends only on the
/// groups' sizes, so every process that reads the same files places alike.
public struct ShardPlacement: Sendable, Equatable {
    /// How the model is sharded.
    public let sharding: GPUSharding
    /// Per shard, its GPU.
    public let devices: [Int]
    /// For `table_wise`: per fusion group, its shard; empty otherwise.
    public let shardOfGroup: [Int]
    /// Per shard, the bytes of the rows it holds as stored (`vector_storage`);
    /// for `row_wise` an even share (the hash spreads the keys evenly).
    public let bytesPerShard: [Int]

    /// The placement of `model`'s groups.
    /// - Parameter groupBytes: per fusion group, the bytes of its rows as stored.
    public init(model: ModelConfiguration, groupBytes: [Int]) {
        sharding = model.gpuSharding
        let devices = model.effectiveDevices
        let shards = model.gpuSharding == .replicated ? devices.count : model.gpuShards ?? devices.count
        self.devices = (0..<shards).map { devices[$0 % devices.count] }
        var bytes = [Int](repeating: 0, count: shards)
        switch model.gpuSharding {
        case .replicated:
            for s in 0..<shards { bytes[s] = groupBytes.reduce(0, +) }
            shardOfGroup = []
        case .rowWise:
            let total = groupBytes.reduce(0, +)
            for s in 0..<shards { bytes[s] = total / shards + (s < total % shards ? 1 : 0) }
            shardOfGroup = []
        case .tableWise:
            var placed = [Int](repeating: 0, count: groupBytes.count)
            let order = groupBytes.indices.sorted { groupBytes[$0] != groupBytes[$1] ? groupBytes[$0] > groupBytes[$1] : $0 < $1 }
            for g in order {
                let shard = bytes.indices.min { bytes[$0] != bytes[$1] ? bytes[$0] < bytes[$1] : $0 < $1 }!
                placed[g] = shard
                bytes[shard] += groupBytes[g]
            }
            shardOfGroup = placed
        }
        bytesPerShard = bytes
    }

    /// The number of shards.
    public var shardCount: Int { devices.count }

    /// The shards of `device`, in order.
    public func shards(on device: Int) -> [Int] {
        devices.indices.filter { devices[$0] == device }
    }
}
