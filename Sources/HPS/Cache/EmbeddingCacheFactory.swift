/// Makes the L1 caches of a model's fusion groups on one GPU: the static
/// table, dynamic cache or uvm cache that the model's `embedding_cache_type`
/// asks for. `HPSCUDA` provides one; the core module knows no GPU.
package protocol EmbeddingCacheFactory: Sendable {
    /// Makes the cache of group `group` of `plan` on `device`.
    /// - Parameters:
    ///   - folders: the group's member tables' model folders (a static or
    ///     uvm table reads every row; a dynamic cache may prefill from them).
    ///   - below: the group's tiers on the CPU (nil: none), which the
    ///     cache's misses are read from.
    ///   - shard: for a row-wise sharded model, the shard the cache is: it
    ///     holds (and is sized for) the rows of the keys the shard owns and
    ///     is asked only those; nil for the whole group.
    /// - Throws: when the device cannot be used or a table does not fit, one sentence naming it.
    func makeCache(model: ModelConfiguration, plan: FusionPlan, group: Int, folders: [SparseModelFolder], keyType: KeyType,
                   below: TierChain?, device: Int, shard: RowShard?) throws -> any EmbeddingCache
}

extension EmbeddingCacheFactory {
    /// Makes one cache per group of `plan` on `device` (the whole groups).
    /// - Parameters:
    ///   - folders: per group, its member tables' model folders.
    ///   - below: per group, its tiers on the CPU (nil: none).
    /// - Returns: `plan.groups.count` caches, in group order.
    package func makeCaches(model: ModelConfiguration, plan: FusionPlan, folders: [[SparseModelFolder]], keyType: KeyType,
                            below: [TierChain?], device: Int) throws -> [any EmbeddingCache] {
        try plan.groups.indices.map { g in
            try makeCache(model: model, plan: plan, group: g, folders: folders[g], keyType: keyType,
                          below: g < below.count ? below[g] : nil, device: device, shard: nil)
        }
    }
}
