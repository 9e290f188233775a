import HPS

/// The seed model's tables on one GPU, in the cache type the configuration
/// asks for (`embedding_cache_type`, `use_static_table`): for each variant
/// (one table per lookup layer, or one fused table) either static tables or
/// dynamic caches in front of the CPU hash map.
final class GPUSeedModel {
    let model: SeedModel
    let kernels: GPUKernels
    let cacheType: EmbeddingCacheType
    let fused: GPUTable
    let unfused: [GPUTable]
    let int64Keys: Bool
    /// The CPU servers behind the dynamic caches (kept alive with them).
    let servers: [HierarchicalParameterServer]

    init(model: SeedModel, directory: String, kernels: GPUKernels, cacheType requested: EmbeddingCacheType? = nil) throws {
        self.model = model
        self.kernels = kernels
        var configuration = try HPSConfiguration.load(path: "\(directory)/hps.json")
        guard let config = configuration.model(named: model.modelName) else {
            throw CUDAError.unsupported("\(directory)/hps.json has no model \(model.modelName)")
        }
        let cacheType = requested ?? config.effectiveCacheType
        self.cacheType = cacheType
        let keyType: KeyType = configuration.supportLongLong ? .int64 : .int32
        let int64Keys = keyType == .int64
        self.int64Keys = int64Keys
        switch cacheType {
        case .static, .uvm:
            let placement: GPUStaticTable.Placement = cacheType == .uvm ? .mappedHost : .device
            let folders = try (0..<config.tableCount).map { table in
                try SparseModelFolder(path: HierarchicalParameterServer.resolve(config.sparseFiles[table], base: configuration.baseDirectory),
                                      table: config.tableNames[table], vecSize: config.vecSizes[table]).readAll(keyType: keyType)
            }
            fused = .staticTable(try GPUStaticTable(kernels: kernels, dim: model.dim, members: folders,
                                                    defaults: config.defaultValues, int64Keys: int64Keys, placement: placement))
            unfused = try folders.enumerated().map { table, rows in
                .staticTable(try GPUStaticTable(kernels: kernels, dim: model.dim, members: [rows],
                                                defaults: [config.defaultValues[table]], int64Keys: int64Keys, placement: placement))
            }
            servers = []
        case .dynamic:
            // The CPU hash map is the tier below; the caches pre-fill from it as init_ec asks.
            let fusedServer = try HierarchicalParameterServer(configuration: configuration)
            configuration.fuseEmbeddingTable = false
            let unfusedServer = try HierarchicalParameterServer(configuration: configuration)
            servers = [fusedServer, unfusedServer]
            let tableKeys = try (0..<config.tableCount).map { table in
                try SparseModelFolder(path: HierarchicalParameterServer.resolve(config.sparseFiles[table], base: configuration.baseDirectory),
                                      table: config.tableNames[table], vecSize: config.vecSizes[table]).readAll(keyType: keyType).keys
            }
            let prefill = config.initEmbeddingCache && config.cacheRefreshPercentagePerIteration > 0
            func cache(_ server: HierarchicalParameterServer, group: Int, keys: [[Int64]], defaults: [Float]) throws -> GPUDynamicCache {
                let session = try server.session(model: model.modelName)
                guard let lower = session.tierChain(group: group) else {
                    throw CUDAError.unsupported("the seed model has no CPU tier behind its dynamic GPU cache")
                }
                let capacity = Int((Double(keys.reduce(0) { $0 + $1.count }) * config.gpuCachePercentage).rounded(.up))
                let cache = try GPUDynamicCache(kernels: kernels, dim: model.dim, capacity: capacity, members: keys.count,
                                                lower: lower, defaults: defaults, hitRateThreshold: config.hitRateThreshold,
                                                int64Keys: int64Keys)
                if prefill { try cache.prefill(keys: keys, fraction: config.cacheRefreshPercentagePerIteration) }
                cache.startRefreshing(interval: config.refreshInterval, delay: config.refreshDelay)
                return cache
            }
            fused = .dynamicCache(try cache(fusedServer, group: 0, keys: tableKeys, defaults: config.defaultValues))
            unfused = try (0..<config.tableCount).map { table in
                .dynamicCache(try cache(unfusedServer, group: table, keys: [tableKeys[table]], defaults: [config.defaultValues[table]]))
            }
        }
    }

    /// Bytes of one key as uploaded.
    var keyBytes: Int { int64Keys ? 8 : 4 }

    /// Writes a batch's keys, table after table, into `target` as uploaded.
    func pack(_ batch: [[Int64]], into target: UnsafeMutableRawPointer) {
        var offset = 0
        for keys in batch {
            for key in keys {
                if int64Keys {
                    target.storeBytes(of: key, toByteOffset: offset, as: Int64.self)
                } else {
                    target.storeBytes(of: UInt32(truncatingIfNeeded: key), toByteOffset: offset, as: UInt32.self)
                }
                offset += keyBytes
            }
        }
    }

    /// Looks up device keys, run after run, with one launch.
    /// - Parameters:
    ///   - runs: (member, count) per run, for a dynamic cache.
    ///   - runArrays: the same runs on the device (starts, then members), for a static table.
    func lookup(_ table: GPUTable, keys: UInt64, count: Int, runs: [(member: Int, count: Int)],
                runArrays: (starts: UInt64, members: UInt64), output: UInt64, layout: GPUStaticTable.Layout,
                keysPerSample: Int, stream: CUDAStream) throws {
        switch table {
        case .staticTable(let table):
            try table.lookup(keys: keys, count: count, runStarts: runArrays.starts, runMembers: runArrays.members,
                             runs: runs.count, output: output, layout: layout, keysPerSample: keysPerSample, stream: stream)
        case .dynamicCache(let cache):
            // The cache works on its own stream; order it after the key copy.
            try stream.synchronize()
            _ = try cache.lookup(deviceKeys: keys, count: count, runs: runs, output: output, layout: layout,
                                 keysPerSample: keysPerSample)
        }
    }
}
