public import HPS

/// Makes the GPU L1 caches of the models a `HierarchicalParameterServer`
/// serves from GPUs (`gpucache: true`, on each device of
/// `deployed_device_list`): per fusion group, the table the model's
/// `effectiveCacheType` asks for — a static table in device memory, a
/// dynamic cache in front of the group's CPU tiers, or a uvm cache (the
/// table in mapped host memory with a dynamic cache in front) — pre-filled
/// as `init_ec` and `cache_refresh_percentage_per_iteration` say.
///
/// ```swift
/// let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: "hps.json"),
///                                              gpu: GPUCacheFactory())
/// let session = try server.session(model: "8_table", device: 0)
/// let vectors = try session.lookup(table: 0, keys: [1, 2, 3])
/// ```
///
/// Each GPU is opened, and its kernels compiled, once for every model.
///
/// Thread safety: `makeCaches` may be called from any thread.
public final class GPUCacheFactory: EmbeddingCacheFactory {
    private let kernelsByDevice = Locked<[Int: GPUKernels]>([:])
    /// The launch shapes and compile-time switches of every GPU's kernels.
    public let tuning: GPUTuning

    /// A factory that opens each GPU when a model first asks for it, with the default tuning.
    public init() {
        tuning = GPUTuning()
    }

    /// A factory whose GPUs' kernels are tuned as `tuning` says.
    /// - Throws: `CUDAError.invalidTuning` for a tuning setting out of range.
    public init(tuning: GPUTuning) throws(CUDAError) {
        try tuning.validate()
        self.tuning = tuning
    }

    /// The kernels of GPU `index`, opened at the first call and shared by every model after it.
    /// - Throws: `CUDAError` when the driver cannot be loaded or the GPU does not exist.
    public func kernels(device index: Int) throws(CUDAError) -> GPUKernels {
        try kernelsByDevice.withLock { (kernels) throws(CUDAError) -> GPUKernels in
            if let opened = kernels[index] { return opened }
            let opened = try GPUKernels(device: try CUDADevice(index: index), tuning: tuning)
            kernels[index] = opened
            return opened
        }
    }

    /// Makes the GPU table or cache of group `group` of `plan` on `device`;
    /// for a row-wise shard, of the rows the shard owns (a dynamic cache's
    /// capacity is `gpucacheper` × those keys).
    /// - Throws: `CUDAError` with one sentence: no driver, a device that
    ///   does not exist, a dynamic cache with no tier below, or a table that
    ///   does not fit; `ModelFileError` for a model file that cannot be read.
    package func makeCache(model: ModelConfiguration, plan: FusionPlan, group g: Int, folders: [SparseModelFolder],
                           keyType: KeyType, below: TierChain?, device: Int, shard: RowShard?) throws -> any EmbeddingCache {
        let kernels: GPUKernels
        do {
            kernels = try self.kernels(device: device)
        } catch {
            if case let .noSuchDevice(index, count) = error {
                throw CUDAError.modelDevice(model: model.name, device: index, count: count)
            }
            throw error
        }
        let group = plan.groups[g]
        // A static or uvm table holds every row (of its shard); a dynamic cache prefills from them.
        let rows = try folders.map { try $0.readAll(keyType: keyType, shard: shard) }
        var name = FusionPlan.tag(model: model.name, group: group.name)
        if let shard, shard.count > 1 { name += " (shard \(shard.index) of \(shard.count))" }
        let table = try GPUTable.make(cacheType: model.effectiveCacheType, model: model, kernels: kernels,
                                      dim: group.vecSize, rows: rows, defaults: group.tables.map { model.defaultValues[$0] },
                                      int64Keys: keyType == .int64, lower: below, name: name)
        return table.cache
    }
}
