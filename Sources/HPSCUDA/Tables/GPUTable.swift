package import HPS

/// One fusion group's table on a GPU, of either kind.
package enum GPUTable {
    /// A static table in device memory.
    case staticTable(GPUStaticTable)
    /// A GPU cache: in front of the CPU tiers (`dynamic`) or of the table in
    /// mapped host memory (`uvm`).
    case dynamicCache(GPUDynamicCache)

    /// The table as a session's L1 cache.
    var cache: any EmbeddingCache {
        switch self {
        case .staticTable(let table): table
        case .dynamicCache(let cache): cache
        }
    }

    /// A group's table in the cache type a model asks for, pre-filled as the
    /// model says (`init_ec`, `cache_refresh_percentage_per_iteration`). A
    /// dynamic cache's refresh (`refresh_interval`, `refresh_delay`) is its
    /// background work, which its owner runs.
    /// - Parameters:
    ///   - rows: per member table, its keys and vectors (read from the model files).
    ///   - lower: the CPU tiers behind a `dynamic` cache (volatile, persistent, default).
    ///   - name: names the group in errors, e.g. `hps_et.<model>.<group>`.
    package static func make(cacheType: EmbeddingCacheType, model: ModelConfiguration, kernels: GPUKernels, dim: Int,
                     rows: [(keys: [Int64], vectors: [Float])], defaults: [Float], int64Keys: Bool,
                     lower: (any EmbeddingStoreTable)?, name: String) throws(CUDAError) -> GPUTable {
        if cacheType == .static {
            return .staticTable(try GPUStaticTable(kernels: kernels, dim: dim, members: rows, defaults: defaults,
                                                   int64Keys: int64Keys, placement: .device, storage: model.vectorStorage,
                                                   name: name))
        }
        let source: GPUDynamicCache.MissSource
        if cacheType == .uvm {
            // The whole table in mapped host memory, with the cache of gpucacheper × its keys in front.
            // The table and the cache in front store rows as vector_storage says.
            source = .mappedTable(try GPUStaticTable(kernels: kernels, dim: dim, members: rows, defaults: defaults,
                                                     int64Keys: int64Keys, placement: .mappedHost, storage: model.vectorStorage,
                                                     name: name))
        } else {
            guard let lower else {
                throw .noTierBelow(table: name)
            }
            // Misses are filled through every CPU tier (volatile, then persistent, then the default).
            source = .tier(lower)
        }
        let keys = rows.reduce(0) { $0 + $1.keys.count }
        let capacity = max(1, Int((Double(keys) * model.gpuCachePercentage).rounded(.up)))
        let cache = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: capacity, members: rows.count, source: source,
                                        defaults: defaults, hitRateThreshold: model.hitRateThreshold, int64Keys: int64Keys,
                                        name: name, refreshInterval: model.refreshInterval, refreshDelay: model.refreshDelay,
                                        storage: model.vectorStorage)
        if model.initEmbeddingCache && model.cacheRefreshPercentagePerIteration > 0 {
            try cache.prefill(keys: rows.map(\.keys), fraction: model.cacheRefreshPercentagePerIteration)
        }
        return .dynamicCache(cache)
    }
}

/// A GPU table or cache, whose kernels (and device) a caller on the same GPU can share.
protocol GPUResident: AnyObject {
    var kernels: GPUKernels { get }
}

extension GPUStaticTable: GPUResident {}
extension GPUDynamicCache: GPUResident {}
