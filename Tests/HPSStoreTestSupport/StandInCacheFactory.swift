package import HPS

/// Stands in for `GPUCacheFactory` where there is no GPU (CI): each cache it
/// makes is a `StandInGPUCache` holding every row it is given (for a
/// row-wise shard, those its shard owns), and it records what it was asked
/// to make.
package final class StandInCacheFactory: EmbeddingCacheFactory {
    /// One cache made.
    package struct Call: Sendable {
        package var group: Int
        package var device: Int
        package var shard: RowShard?
        /// The keys of the rows it holds.
        package var keys: [Int64]
    }

    /// The caches made, in order.
    package let calls = Locked<[Call]>([])

    package init() {}

    package func makeCache(model: ModelConfiguration, plan: FusionPlan, group g: Int, folders: [SparseModelFolder],
                           keyType: KeyType, below: TierChain?, device: Int, shard: RowShard?) throws -> any EmbeddingCache {
        let group = plan.groups[g]
        let rows = try folders.map { try $0.readAll(keyType: keyType, shard: shard) }
        let count = rows.reduce(0) { $0 + $1.keys.count }
        let cache = CPUEmbeddingCache(tag: FusionPlan.tag(model: model.name, group: group.name), vecSize: group.vecSize,
                                      members: group.tables.count, capacity: 4 * count + 64)
        for (member, table) in rows.enumerated() {
            try cache.insert(member: member, keys: table.keys, vectors: table.vectors)
        }
        calls.withLock { $0.append(Call(group: g, device: device, shard: shard, keys: rows.flatMap(\.keys))) }
        return StandInGPUCache(rows: cache, device: device)
    }
}

/// A CPU cache that says it lives on a GPU, so that sessions treat it as the
/// GPU cache it stands in for (it answers host keys into host memory).
package final class StandInGPUCache: EmbeddingCache {
    /// The rows, in a CPU cache.
    package let rows: CPUEmbeddingCache
    package let device: Int?
    package var kind: String { "gpu_static" }
    package var vecSize: Int { rows.vecSize }
    package var memberCount: Int { rows.memberCount }
    package var statistics: CacheStatistics { rows.statistics }

    package init(rows: CPUEmbeddingCache, device: Int) {
        self.rows = rows
        self.device = device
    }

    package func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                        hits: inout TierHits) throws(LookupError) {
        try rows.lookup(batch, below: below, defaults: defaults, hits: &hits)
    }

    package func update(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>) throws(LookupError) -> CacheUpdate {
        rows.update(member: member, keys: keys, vectors: vectors)
    }
}
