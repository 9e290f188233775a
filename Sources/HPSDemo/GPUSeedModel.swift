package import HPSCUDA
package import HPS

/// The seed model's tables on one GPU, in the cache type the configuration
/// asks for (`embedding_cache_type`, `use_static_table`): for each variant
/// (one table per lookup layer, or one fused table) either static tables,
/// dynamic caches in front of the CPU hash map, or uvm caches in front of
/// the tables in mapped host memory.
package final class GPUSeedModel {
    let model: SeedModel
    let kernels: GPUKernels
    let cacheType: EmbeddingCacheType
    package let fused: GPUTable
    package let unfused: [GPUTable]
    let int64Keys: Bool
    /// The CPU servers behind the dynamic caches (kept alive with them).
    let servers: [HierarchicalParameterServer]
    /// Recorded after a batch's keys are written, for a dynamic cache's stream to wait on.
    let keysCopied: CUDAEvent

    /// - Parameter storage: how the tables store their rows, if not as the configuration says.
    package init(model: SeedModel, directory: String, kernels: GPUKernels, cacheType requested: EmbeddingCacheType? = nil,
                 storage: VectorStorage? = nil) throws {
        self.model = model
        self.kernels = kernels
        keysCopied = try CUDAEvent(device: kernels.device, timing: false)
        var configuration = try HPSConfiguration.load(path: "\(directory)/hps.json")
        guard var config = configuration.model(named: model.modelName) else {
            throw ToolFailure("\(directory)/hps.json has no model \(model.modelName)")
        }
        if let storage { config.vectorStorage = storage }
        let cacheType = requested ?? config.effectiveCacheType
        self.cacheType = cacheType
        let keyType: KeyType = configuration.supportLongLong ? .int64 : .int32
        let int64Keys = keyType == .int64
        self.int64Keys = int64Keys
        let folders = try (0..<config.tableCount).map { table in
            try SparseModelFolder(path: HierarchicalParameterServer.resolve(config.sparseFiles[table], base: configuration.baseDirectory),
                                  table: config.tableNames[table], vecSize: config.vecSizes[table]).readAll(keyType: keyType)
        }
        // A dynamic cache's tier below is the CPU hash map, fused and unfused.
        var lowerFused: (any EmbeddingStoreTable)? = nil
        var lowerUnfused: [(any EmbeddingStoreTable)?] = Array(repeating: nil, count: config.tableCount)
        if cacheType == .dynamic {
            let fusedServer = try HierarchicalParameterServer(configuration: configuration)
            configuration.fuseEmbeddingTable = false
            let unfusedServer = try HierarchicalParameterServer(configuration: configuration)
            servers = [fusedServer, unfusedServer]
            lowerFused = try fusedServer.session(model: model.modelName).tierChain(group: 0)
            let unfusedSession = try unfusedServer.session(model: model.modelName)
            lowerUnfused = (0..<config.tableCount).map { unfusedSession.tierChain(group: $0) }
        } else {
            servers = []
        }
        fused = try GPUTable.make(cacheType: cacheType, model: config, kernels: kernels, dim: model.dim, rows: folders,
                                  defaults: config.defaultValues, int64Keys: int64Keys, lower: lowerFused,
                                  name: "the seed model's fused table")
        unfused = try folders.enumerated().map { table, rows in
            try GPUTable.make(cacheType: cacheType, model: config, kernels: kernels, dim: model.dim, rows: [rows],
                              defaults: [config.defaultValues[table]], int64Keys: int64Keys, lower: lowerUnfused[table],
                              name: "the seed model's table\(table)")
        }
    }

    /// Bytes of one key as uploaded.
    package var keyBytes: Int { int64Keys ? 8 : 4 }

    /// Writes a batch's keys, table after table, into `target` as uploaded.
    package func pack(_ batch: [[Int64]], into target: UnsafeMutableRawPointer) {
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
    ///   - started, finished: events recorded on the stream the lookup runs
    ///     on, once the keys are there and after the lookup (for its time
    ///     alone: from the keys on the device to the rows written, and for a
    ///     dynamic cache, which waits for its miss count, to the call's return).
    package func lookup(_ table: GPUTable, keys: UInt64, count: Int, runs: [(member: Int, count: Int)],
                runArrays: (starts: UInt64, members: UInt64), output: UInt64, layout: GPUStaticTable.Layout,
                keysPerSample: Int, stream: CUDAStream, started: CUDAEvent? = nil, finished: CUDAEvent? = nil) throws {
        switch table {
        case .staticTable(let table):
            try started?.record(stream)
            try table.lookup(keys: keys, count: count, runStarts: runArrays.starts, runMembers: runArrays.members,
                             runs: runs.count, output: output, layout: layout, keysPerSample: keysPerSample, stream: stream)
            try finished?.record(stream)
        case .dynamicCache(let cache):
            // The cache works on its own stream: it waits on the device for the
            // key copy on this one (an event, not a host synchronize, which
            // cost the call the copy's whole round trip), and returns once its
            // work is done, so this stream's later work may read the output.
            try keysCopied.record(stream)
            try cache.stream.wait(for: keysCopied)
            try started?.record(cache.stream)
            _ = try cache.lookup(deviceKeys: keys, count: count, runs: runs, output: output, layout: layout,
                                 keysPerSample: keysPerSample)
            try finished?.record(cache.stream)
        }
    }
}
