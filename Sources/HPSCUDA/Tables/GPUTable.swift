import HPS

/// One fusion group's table on a GPU, of either kind.
enum GPUTable {
    /// A static table in device memory.
    case staticTable(GPUStaticTable)
    /// A GPU cache: in front of the CPU tiers (`dynamic`) or of the table in
    /// mapped host memory (`uvm`).
    case dynamicCache(GPUDynamicCache)

    /// A group's table in the cache type a model asks for.
    /// - Parameters:
    ///   - rows: per member table, its keys and vectors (read from the model files).
    ///   - lower: the CPU tiers behind a `dynamic` cache (volatile, persistent, default).
    ///   - what: names the group in errors.
    static func make(cacheType: EmbeddingCacheType, model: ModelConfiguration, kernels: GPUKernels, dim: Int,
                     rows: [(keys: [Int64], vectors: [Float])], defaults: [Float], int64Keys: Bool,
                     lower: (any EmbeddingStoreTable)?, what: String) throws -> GPUTable {
        if cacheType == .static {
            return .staticTable(try GPUStaticTable(kernels: kernels, dim: dim, members: rows, defaults: defaults,
                                                   int64Keys: int64Keys, placement: .device))
        }
        let source: GPUDynamicCache.MissSource
        if cacheType == .uvm {
            // The whole table in mapped host memory, with the cache of gpucacheper × its keys in front.
            source = .mappedTable(try GPUStaticTable(kernels: kernels, dim: dim, members: rows, defaults: defaults,
                                                     int64Keys: int64Keys, placement: .mappedHost))
        } else {
            guard let lower else {
                throw CUDAError.unsupported("\(what) has no CPU tier behind its dynamic GPU cache; enable volatile_db or persistent_db")
            }
            // Misses are filled through every CPU tier (volatile, then persistent, then the default).
            source = .tier(lower)
        }
        let keys = rows.reduce(0) { $0 + $1.keys.count }
        let capacity = max(1, Int((Double(keys) * model.gpuCachePercentage).rounded(.up)))
        let cache = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: capacity, members: rows.count, source: source,
                                        defaults: defaults, hitRateThreshold: model.hitRateThreshold, int64Keys: int64Keys)
        if model.initEmbeddingCache && model.cacheRefreshPercentagePerIteration > 0 {
            try cache.prefill(keys: rows.map(\.keys), fraction: model.cacheRefreshPercentagePerIteration)
        }
        cache.startRefreshing(interval: model.refreshInterval, delay: model.refreshDelay)
        return .dynamicCache(cache)
    }
}
