/// Makes the L1 caches of a model's fusion groups on one GPU: the static
/// table, dynamic cache or uvm cache that the model's `embedding_cache_type`
/// asks for. `HPSCUDA` provides one; the core module knows no GPU.
package protocol EmbeddingCacheFactory: Sendable {
    /// Makes one cache per group of `plan` on `device`.
    /// - Parameters:
    ///   - folders: per group, its member tables' model folders (a static or
    ///     uvm table reads every row; a dynamic cache may prefill from them).
    ///   - below: per group, its tiers on the CPU (nil: none), which the
    ///     cache's misses are read from.
    /// - Returns: `plan.groups.count` caches, in group order.
    /// - Throws: when the device cannot be used or a table does not fit, one sentence naming it.
    func makeCaches(model: ModelConfiguration, plan: FusionPlan, folders: [[SparseModelFolder]], keyType: KeyType,
                    below: [TierChain?], device: Int) throws -> [any EmbeddingCache]
}
