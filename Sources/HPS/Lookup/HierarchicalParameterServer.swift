import Dispatch
public import Logging

/// Assembles the tiers of a configuration, loads every model's tables into
/// them, and hands out one `LookupSession` per model and device: on the CPU
/// for every model, and, given a GPU cache factory (`HPSCUDA`'s), on each GPU
/// of the `deployed_device_list` of every model with `gpucache: true`, whose
/// groups then have GPU tables or caches as their L1 in front of the same tiers.
///
/// ```swift
/// let server = try await HierarchicalParameterServer.open(configurationFile: "hps.json")
/// let vectors = try server.session(model: "8_table").lookup(table: 0, keys: [1, 2, 3])
/// ```
///
/// Tiers beyond the hash maps are given as `backends` (`[.redisCluster]`
/// from HPSRedis, …), GPU tables as `gpu` (`GPUCacheFactory()` from HPSCUDA).
///
/// Thread safety: sessions may be used from any thread once `init` returns.
public final class HierarchicalParameterServer: Sendable {
    /// The configuration served.
    public let configuration: HPSConfiguration
    /// The volatile store (`volatile_db`), if enabled.
    package let volatileStore: (any EmbeddingStore)?
    /// The persistent store (`persistent_db`), if enabled.
    package let persistentStore: (any EmbeddingStore)?
    /// Non-fatal findings of parsing and of loading the models loaded at start, one sentence each.
    public var warnings: [String] { state.withLock { $0.startWarnings } }
    /// What loading the models loaded at start read, per table.
    public var loadReports: [TableLoadReport] { state.withLock { $0.startReports } }
    /// The models loaded, by name, and what loading and unloading them needs.
    private let state: Locked<Deployments>
    /// Taken for the whole of a load or an unload, so that two of them
    /// never build or drop the same model's tables at once.
    private let modelChanges = Locked(())
    private let keyType: KeyType
    private let parallelism: Int
    private let logger: Logger?
    private let gpu: (any EmbeddingCacheFactory)?
    /// The rows of volatile tables left out at load because a part of the
    /// store could not be reached, written when it can be (`backgroundWork`).
    package let catchUp: StoreCatchUp

    struct Deployments {
        var models: [String: ModelDeployment] = [:]
        /// Names in the order loaded.
        var order: [String] = []
        /// Per name, the generation the next load of it gets (its tables'
        /// tags must differ from those of a version still draining).
        var nextGeneration: [String: Int] = [:]
        var startWarnings: [String] = []
        var startReports: [TableLoadReport] = []
    }

    /// Reads the configuration file at `path`, builds its tiers and loads its
    /// models' tables, on a thread of its own: loading reads every model file
    /// and may take seconds, which no caller's task should wait through on a
    /// thread of the cooperative pool.
    ///
    /// ```swift
    /// let server = try await HierarchicalParameterServer.open(configurationFile: "hps.json",
    ///                                                         backends: [.redisCluster])
    /// ```
    /// - Parameters: as `init(configuration:backends:parallelism:logger:loading:)`.
    /// - Throws: `HPSError`: of code `invalidConfiguration` for a file that
    ///   cannot be read or does not hold a valid configuration (its cause a
    ///   `ConfigurationError` naming the file or the JSON path), then what
    ///   `init` throws.
    public static func open(configurationFile path: String, backends: [StoreBackend] = [], parallelism: Int? = nil,
                            logger: Logger? = nil) async throws -> HierarchicalParameterServer {
        try await open(configurationFile: path, backends: backends, parallelism: parallelism, logger: logger, caches: nil)
    }

    /// `open(configurationFile:backends:parallelism:logger:)` with the L1
    /// caches of `caches` (HPSCUDA's public `open(…gpu:)` passes its GPU factory).
    package static func open(configurationFile path: String, backends: [StoreBackend], parallelism: Int?,
                             logger: Logger?, caches: (any EmbeddingCacheFactory)?) async throws -> HierarchicalParameterServer {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    let configuration: HPSConfiguration
                    do throws(ConfigurationError) {
                        configuration = try HPSConfiguration.load(path: path)
                    } catch {
                        throw HPSError.wrapping(error, otherwise: .invalidConfiguration)
                    }
                    return try HierarchicalParameterServer(configuration: configuration, backends: backends,
                                                           parallelism: parallelism, logger: logger, caches: caches,
                                                           loading: nil)
                })
            }
        }
    }

    /// Builds the tiers and loads the tables.
    /// - Parameters:
    ///   - configuration: a parsed HugeCTR configuration.
    ///   - backends: the tiers and update sources beyond the hash maps that
    ///     the configuration may name (`[.redisCluster, .rocksDB]`, …).
    ///   - parallelism: threads for loading and for each lookup (nil: one per core).
    ///   - logger: receives the warnings and a line per loaded table.
    ///   (HPSCUDA adds `init(configuration:backends:parallelism:logger:gpu:loading:)`,
    ///   which builds the GPU tables and caches of the models with
    ///   `gpucache: true` on their devices; without it every model is served
    ///   from the CPU.)
    ///   - loading: the models loaded now, by name (nil: every model of the
    ///     configuration; `hps serve --model-control-mode explicit` loads those
    ///     of `--load-model`, and the others on request).
    /// - Throws: `HPSError`, whose code says what kind of problem it is and
    ///   whose cause is the error underneath: `invalidConfiguration` for a
    ///   tier or update source the configuration names and no backend of
    ///   `backends` provides (`ConfigurationError.backendUnavailable`) and for
    ///   tiers no build serves (no tier to hold the tables,
    ///   `multi_process_hash_map`); `store` for a tier that cannot be made or
    ///   refuses the tables (a Redis Cluster that does not answer);
    ///   `modelFiles` for a model folder that cannot be read
    ///   (`ModelFileError`); `device` for what `gpu` throws for a device or a
    ///   table it cannot make; `unknownModel` for a name in `loading` that
    ///   the configuration does not have.
    public convenience init(configuration: HPSConfiguration, backends: [StoreBackend] = [], parallelism: Int? = nil,
                            logger: Logger? = nil, loading: [String]? = nil) throws {
        try self.init(configuration: configuration, backends: backends, parallelism: parallelism, logger: logger, caches: nil,
                      loading: loading)
    }

    /// `init(configuration:backends:parallelism:logger:loading:)` with the L1
    /// caches of `caches` for the models with `gpucache: true` (HPSCUDA's
    /// public `init(…gpu:…)` passes its GPU factory).
    package convenience init(configuration: HPSConfiguration, backends: [StoreBackend], parallelism: Int?,
                             logger: Logger?, caches: (any EmbeddingCacheFactory)?, loading: [String]?) throws {
        do {
            try self.init(checked: configuration, backends: backends, parallelism: parallelism, logger: logger, gpu: caches,
                          loading: loading)
        } catch {
            throw HPSError.wrapping(error, otherwise: .store)
        }
    }

    private init(checked configuration: HPSConfiguration, backends: [StoreBackend], parallelism: Int?,
                 logger: Logger?, gpu: (any EmbeddingCacheFactory)?, loading: [String]?) throws {
        self.configuration = configuration
        self.parallelism = parallelism ?? availableCores
        self.logger = logger
        self.gpu = gpu
        catchUp = StoreCatchUp(parallelism: self.parallelism)
        keyType = configuration.supportLongLong ? .int64 : .int32
        let (volatileStore, persistentStore) = try Self.makeStores(configuration, backends: backends)
        self.volatileStore = volatileStore
        self.persistentStore = persistentStore
        state = Locked(Deployments())
        var warnings = configuration.warnings
        var reports: [TableLoadReport] = []
        let names = configuration.models.map(\.name)
        for name in loading ?? names where !names.contains(name) {
            throw LookupError.unknownModel(name, available: names)
        }
        for model in configuration.models where loading?.contains(model.name) ?? true {
            let deployment = try deploy(model, generation: 0, baseDirectory: configuration.baseDirectory)
            warnings += deployment.warnings
            reports += deployment.loadReports
            state.withLock {
                $0.models[model.name] = deployment
                $0.order.append(model.name)
                $0.nextGeneration[model.name] = 1
            }
        }
        for warning in warnings { logger?.warning("\(warning)") }
        state.withLock { [warnings, reports] in
            $0.startWarnings = warnings
            $0.startReports = reports
        }
    }

    /// The stores a configuration asks for.
    private static func makeStores(_ configuration: HPSConfiguration,
                                   backends: [StoreBackend]) throws -> ((any EmbeddingStore)?, (any EmbeddingStore)?) {
        let volatileStore: (any EmbeddingStore)?, persistentStore: (any EmbeddingStore)?
        let volatile = configuration.volatileDatabase
        switch volatile.type {
        case .hashMap, .parallelHashMap:
            volatileStore = HashMapStore(volatile)
        case .disabled:
            volatileStore = nil
        case .multiProcessHashMap:
            // Not a part this build lacks: no build has it.
            throw ConfigurationError.invalidValue(
                path: "volatile_db.type",
                expected: "hash_map, parallel_hash_map or redis_cluster (HugeCTR's shared-memory multi_process_hash_map is not implemented)",
                found: "\"\(volatile.type.rawValue)\"")
        case .redisCluster:
            guard let factory = backends.factory(volatile: volatile.type) else {
                throw ConfigurationError.backendUnavailable(
                    path: "volatile_db.type", type: volatile.type.rawValue,
                    reason: "no Redis Cluster tier was given to this server (a Swift program passes StoreBackend.redisCluster from HPSRedis in backends); use hash_map")
            }
            volatileStore = try factory(volatile)
        }
        let persistent = configuration.persistentDatabase
        switch persistent.type {
        case .disabled:
            persistentStore = nil
        case .rocksDB, .mapped:
            guard let factory = backends.factory(persistent: persistent.type) else {
                throw ConfigurationError.backendUnavailable(
                    path: "persistent_db.type", type: persistent.type.rawValue,
                    reason: persistent.type == .rocksDB
                        ? "this build has no RocksDB tier (build with the RocksDB package trait; a Swift program passes StoreBackend.rocksDB from HPSRocksDB in backends); remove persistent_db or set its type to disabled"
                        : "no memory-mapped tier was given to this server (a Swift program passes StoreBackend.mapped from HPSMapped in backends); remove persistent_db or set its type to disabled")
            }
            persistentStore = try factory(persistent)
        }
        if !backends.hasUpdateSource(configuration.updateSource.type) {
            throw ConfigurationError.backendUnavailable(path: "update_source.type", type: configuration.updateSource.type.rawValue,
                                                        reason: "this build has no Kafka update source (build with the Kafka package trait; a Swift program passes StoreBackend.kafka from HPSKafka in backends); remove update_source")
        }
        guard volatileStore != nil || persistentStore != nil else {
            // A configuration that names no tier to hold the tables, whatever the build.
            throw ConfigurationError.invalidValue(
                path: "volatile_db.type",
                expected: "a tier that holds the tables when there is no persistent_db (hash_map, parallel_hash_map or redis_cluster)",
                found: "\"disabled\"")
        }
        return (volatileStore, persistentStore)
    }

    /// Loads a model's tables into the stores, under the tags of
    /// `generation` (`ModelDeployment.tag`), and makes its sessions.
    /// - Throws: `HPSError` naming the model.
    private func deploy(_ model: ModelConfiguration, generation: Int, baseDirectory: String?) throws -> ModelDeployment {
        do {
            return try deployTables(model, generation: generation, baseDirectory: baseDirectory)
        } catch {
            throw HPSError.wrapping(error, otherwise: .store, model: model.name)
        }
    }

    private func deployTables(_ model: ModelConfiguration, generation: Int, baseDirectory: String?) throws -> ModelDeployment {
        var warnings: [String] = []
        var reports: [TableLoadReport] = []
        let volatile = configuration.volatileDatabase
        let persistent = configuration.persistentDatabase
        let storeNames = [volatileStore?.kind, persistentStore?.kind].compactMap { $0 }
        // The top store decides whether lookups wait on a network or a disk, and so whether a CPU cache pays.
        let topMayBlock = (volatileStore ?? persistentStore)?.mayBlock ?? false
        let mayBlock = (volatileStore?.mayBlock ?? false) || (persistentStore?.mayBlock ?? false)
        let plan = FusionPlan(model: model, fuse: configuration.fuseEmbeddingTable && model.fuseEmbeddingTable)
        var tiers: [[any EmbeddingStoreTable]] = []
        var groupFolders: [[SparseModelFolder]] = []
        var tags: [String] = []
        var persistentTiers: [Int?] = []
        for group in plan.groups {
            let folders = try group.tables.map { table in
                try SparseModelFolder(path: Self.resolve(model.sparseFiles[table], base: baseDirectory),
                                      table: model.tableNames[table], vecSize: model.vecSizes[table])
            }
            groupFolders.append(folders)
            let tag = ModelDeployment.tag(model: model.name, group: group.name, generation: generation)
            tags.append(tag)
            var groupTiers: [any EmbeddingStoreTable] = []
            // The persistent tier holds every key; the volatile tier the initial_cache_rate share.
            var persistentTable: (any EmbeddingStoreTable)? = nil
            if let persistentStore {
                if let fileBacked = persistentStore as? any FileBackedStore {
                    persistentTable = try fileBacked.attach(tag, folders: folders, keyType: keyType)
                    if model.vectorStorage != .fp32 && group.tables.first == plan.groups.first?.tables.first {
                        warnings.append("model \(model.name): persistent_db \(persistentStore.kind) serves the model files in place, in float32; vector_storage \(model.vectorStorage.rawValue) applies to the tiers above it")
                    }
                } else {
                    let table = try persistentStore.createTable(tag, vecSize: group.vecSize, members: group.tables.count,
                                                                expectedKeys: folders.reduce(0) { $0 + $1.keyCount },
                                                                storage: model.vectorStorage)
                    if !persistent.readOnly {
                        for (member, folder) in folders.enumerated() {
                            let report = try Self.load(folder, into: table, member: member, model: model.name, rate: 1,
                                                       keyType: keyType, parallelism: parallelism)
                            logger?.info("loaded \(report.loaded) keys of \(folder.table) into \(persistentStore.kind) in \(report.seconds) s")
                        }
                    }
                    persistentTable = table
                }
            }
            if let store = volatileStore {
                let rate = volatile.initialCacheRate
                let expected = folders.reduce(0) { $0 + Int((Double($1.keyCount) * rate).rounded(.up)) }
                let table = try store.createTable(tag, vecSize: group.vecSize, members: group.tables.count, expectedKeys: expected,
                                                  storage: model.vectorStorage)
                for (member, folder) in folders.enumerated() {
                    let report = try Self.load(folder, into: table, member: member, model: model.name, rate: rate,
                                               keyType: keyType, parallelism: parallelism)
                    reports.append(report)
                    if report.replaced > 0 {
                        warnings.append("table \(folder.table) of model \(model.name): \(report.replaced) duplicate key(s) in \(folder.keyPath); the last row of each wins")
                    }
                    if persistentTable == nil && report.loaded < folder.keyCount - report.replaced {
                        warnings.append("table \(folder.table) of model \(model.name): initial_cache_rate \(rate) loaded \(report.loaded) of \(folder.keyCount) keys and there is no persistent_db, so the others are answered with the default value")
                    }
                    if report.unavailable > 0 {
                        let below = persistentTable != nil ? "from \(persistent.type.rawValue)" : "with the default value"
                        warnings.append("table \(folder.table) of model \(model.name): \(report.unavailable) key(s) were not loaded into \(store.kind) because \(report.unavailableReason ?? "a part of it could not be reached"); until they are, they are answered \(below), and they are written as soon as it answers again")
                        catchUp.add(table: table, member: member, folder: folder, rate: rate, keyType: keyType,
                                    model: model.name, kind: store.kind, keys: report.unavailable)
                    }
                    if report.evicted > 0 {
                        warnings.append("table \(folder.table) of model \(model.name): \(report.evicted) key(s) were evicted while loading because volatile_db.overflow_margin is \(volatile.overflowMargin) per partition")
                    }
                    logger?.info("loaded \(report.loaded) keys of \(folder.table) into \(table.tag) in \(report.seconds) s")
                }
                groupTiers.append(table)
            }
            persistentTiers.append(persistentTable == nil ? nil : groupTiers.count)
            if let persistentTable { groupTiers.append(persistentTable) }
            tiers.append(groupTiers)
        }
        let cacheMissed = volatile.cacheMissedEmbeddings && volatileStore != nil && persistentStore != nil
        // On the CPU, a bounded cache in front of a top tier that waits (Redis, RocksDB, the mapped files).
        var cpuCaches: [(any EmbeddingCache)?] = []
        if model.gpuCache && topMayBlock {
            cpuCaches = zip(plan.groups, groupFolders).map { group, folders in
                let keys = folders.reduce(0) { $0 + $1.keyCount }
                return CPUEmbeddingCache(tag: FusionPlan.tag(model: model.name, group: group.name), vecSize: group.vecSize,
                                         members: group.tables.count,
                                         capacity: max(1, Int((Double(keys) * model.gpuCachePercentage).rounded(.up))),
                                         parallelism: parallelism)
            }
        }
        let cpu = LookupSession(model: model, plan: plan, keyType: keyType, tiers: tiers, tierNames: storeNames,
                                parallelism: parallelism, cacheMissedEmbeddings: cacheMissed, caches: cpuCaches,
                                mayBlock: mayBlock)
        var deviceSessions: [Int: LookupSession] = [:]
        if let gpu, model.gpuCache {
            let below = (0..<plan.groups.count).map { cpu.tierChain(group: $0) }
            let shared: [any EmbeddingCache]?
            do {
                shared = try Self.shardedCaches(model: model, plan: plan, folders: groupFolders, keyType: keyType, below: below,
                                                gpu: gpu, logger: logger)
            } catch {
                throw HPSError.wrapping(error, otherwise: .device, model: model.name)
            }
            for device in model.effectiveDevices {
                let caches: [any EmbeddingCache]
                do {
                    caches = try shared ?? gpu.makeCaches(model: model, plan: plan, folders: groupFolders, keyType: keyType,
                                                          below: below, device: device)
                } catch {
                    throw HPSError.wrapping(error, otherwise: .device, model: model.name)
                }
                precondition(caches.count == plan.groups.count, "a GPU cache factory makes one cache per group")
                deviceSessions[device] = LookupSession(
                    model: model, plan: plan, keyType: keyType, tiers: tiers, tierNames: storeNames,
                    parallelism: parallelism, cacheMissedEmbeddings: cacheMissed, caches: caches, device: device,
                    mayBlock: true)
                if shared == nil {
                    logger?.info("model \(model.name) on GPU \(device): \(caches.first?.kind ?? "no") caches for \(plan.groups.count) group(s)")
                }
            }
        }
        return ModelDeployment(model: model, generation: generation, session: cpu, deviceSessions: deviceSessions, tags: tags,
                               persistentTiers: persistentTiers, warnings: warnings, loadReports: reports)
    }

    /// The GPU caches of a sharded model (`gpu_sharding` `row_wise` or
    /// `table_wise`), one per group, which the sessions of all its devices
    /// share; nil for a replicated model (each device then has its own).
    /// `row_wise`: per group, a `RowWiseShardedCache` over one cache per
    /// shard, each on its shard's GPU holding the rows its shard owns.
    /// `table_wise`: each group's cache on the GPU of the shard that
    /// `ShardPlacement` gives it.
    private static func shardedCaches(model: ModelConfiguration, plan: FusionPlan, folders: [[SparseModelFolder]],
                                      keyType: KeyType, below: [TierChain?], gpu: any EmbeddingCacheFactory,
                                      logger: Logger?) throws -> [any EmbeddingCache]? {
        guard model.gpuSharding != .replicated else { return nil }
        let groupBytes = zip(plan.groups, folders).map { group, folders in
            folders.reduce(0) { $0 + $1.keyCount } * model.vectorStorage.rowBytes(dim: group.vecSize)
        }
        let placement = ShardPlacement(model: model, groupBytes: groupBytes)
        var caches: [any EmbeddingCache] = []
        for (g, group) in plan.groups.enumerated() {
            switch model.gpuSharding {
            case .replicated:
                preconditionFailure("a replicated model has no shared caches")
            case .rowWise:
                let shards = try placement.devices.indices.map { s in
                    try gpu.makeCache(model: model, plan: plan, group: g, folders: folders[g], keyType: keyType,
                                      below: below[g], device: placement.devices[s],
                                      shard: RowShard(index: s, count: placement.shardCount))
                }
                caches.append(RowWiseShardedCache(shards: shards, name: FusionPlan.tag(model: model.name, group: group.name)))
            case .tableWise:
                let s = placement.shardOfGroup[g]
                caches.append(try gpu.makeCache(model: model, plan: plan, group: g, folders: folders[g], keyType: keyType,
                                                below: below[g], device: placement.devices[s], shard: nil))
                logger?.info("model \(model.name): group \(group.name) (\(groupBytes[g]) bytes) on shard \(s), GPU \(placement.devices[s])")
            }
        }
        let shards = placement.devices.enumerated().map { "shard \($0.offset) on GPU \($0.element): \(placement.bytesPerShard[$0.offset]) bytes" }
        logger?.info("model \(model.name): \(caches.first?.kind ?? "no") caches, gpu_sharding \(model.gpuSharding.rawValue), \(shards.joined(separator: "; "))")
        return caches
    }

    /// The models loaded, in the order loaded.
    public var models: [ModelConfiguration] {
        state.withLock { state in state.order.compactMap { state.models[$0]?.model } }
    }

    /// The version of a model being served.
    /// - Throws: `LookupError.unknownModel` when no model of that name is loaded.
    public func deployment(model: String) throws(LookupError) -> ModelDeployment {
        let result: Result<ModelDeployment, LookupError> = state.withLock { state in
            if let deployment = state.models[model] { return .success(deployment) }
            return .failure(.unknownModel(model, available: state.order))
        }
        return try result.get()
    }

    /// Loads `model` (a new one, or a new version of a loaded one: a changed
    /// configuration or new model files) into the stores and makes its
    /// sessions, then puts it in place of the old version in one step: a
    /// lookup asks for the model's session either before (the old version)
    /// or after (the new). The old version's tables stay in the stores until
    /// its owner, once no request uses it any more, drops them (`dropTables`).
    /// - Parameter baseDirectory: where the model's relative paths start (the configuration file's folder).
    /// - Returns: the new version, and the one it replaced.
    /// - Throws: `HPSError` naming the model, as `init` throws for a model
    ///   it loads; the old version is then still served.
    public func load(_ model: ModelConfiguration, baseDirectory: String? = nil) throws -> (loaded: ModelDeployment, replaced: ModelDeployment?) {
        try modelChanges.withLock { _ in
            let generation = state.withLock { state in
                defer { state.nextGeneration[model.name, default: 0] += 1 }
                return state.nextGeneration[model.name, default: 0]
            }
            let deployment: ModelDeployment
            do {
                deployment = try deploy(model, generation: generation, baseDirectory: baseDirectory ?? configuration.baseDirectory)
            } catch {
                // What the failed load created under its own tags goes; the old version keeps its tables.
                let plan = FusionPlan(model: model, fuse: configuration.fuseEmbeddingTable && model.fuseEmbeddingTable)
                _ = dropTables(tags: plan.groups.map { ModelDeployment.tag(model: model.name, group: $0.name, generation: generation) })
                throw error
            }
            for warning in deployment.warnings { logger?.warning("\(warning)") }
            let replaced = state.withLock { state -> ModelDeployment? in
                let old = state.models.updateValue(deployment, forKey: model.name)
                if old == nil { state.order.append(model.name) }
                return old
            }
            return (deployment, replaced)
        }
    }

    /// Stops serving a model: lookups after this call find no model of that
    /// name. Its tables stay in the stores until its owner, once no request
    /// uses it any more, drops them (`dropTables`).
    /// - Returns: the version unloaded, nil when none was loaded.
    public func unload(model: String) -> ModelDeployment? {
        modelChanges.withLock { _ in
            state.withLock { state in
                state.order.removeAll { $0 == model }
                return state.models.removeValue(forKey: model)
            }
        }
    }

    /// Removes a version's tables from the stores, once it is unloaded or
    /// replaced and no request uses it any more.
    /// - Returns: one sentence per table a store could not delete (the store
    ///   has forgotten the table; its data may stay behind).
    @discardableResult
    public func dropTables(of deployment: ModelDeployment) -> [String] {
        modelChanges.withLock { _ in dropTables(tags: deployment.tags) }
    }

    private func dropTables(tags: [String]) -> [String] {
        catchUp.remove(tags: tags)
        var problems: [String] = []
        for tag in tags {
            for store in [volatileStore, persistentStore].compactMap({ $0 }) {
                do throws(StoreError) {
                    try store.dropTable(tag)
                } catch {
                    problems.append("\(store.kind) table \(tag): \(error.description)")
                    logger?.warning("could not drop \(store.kind) table \(tag): \(error.description)")
                }
            }
        }
        return problems
    }

    /// The session of a model on the CPU.
    public func session(model: String) throws(LookupError) -> LookupSession {
        try deployment(model: model).session
    }

    /// The session of a model on one of its GPUs.
    /// - Throws: `LookupError.unknownModel`, or `.notOnDevice` when the model
    ///   is not served from that GPU (not in its `deployed_device_list`,
    ///   `gpucache` false, or a server built without GPUs).
    public func session(model: String, device: Int) throws(LookupError) -> LookupSession {
        let deployment = try deployment(model: model)
        guard let session = deployment.deviceSessions[device] else {
            throw .notOnDevice(model: model, device: device, devices: deployment.deviceSessions.keys.sorted())
        }
        return session
    }

    /// A model's sessions on its GPUs, in device order (empty when it is
    /// served from the CPU only, or not loaded).
    public func deviceSessions(model: String) -> [LookupSession] {
        (try? deployment(model: model))?.orderedDeviceSessions ?? []
    }

    /// Whether any model loaded is served from a GPU.
    public var hasDeviceSessions: Bool {
        state.withLock { $0.models.values.contains { !$0.deviceSessions.isEmpty } }
    }

    /// The background work of the stores and of every loaded model's caches,
    /// for the owner to run until shutdown (a model loaded later brings its
    /// own: `ModelDeployment.backgroundWork`).
    public var backgroundWork: [any BackgroundWork] { backgroundWork(logger: logger) }

    /// `backgroundWork`, logging what it finds (tables caught up, tier
    /// faults) to `logger` instead of the hierarchy's own.
    public func backgroundWork(logger: Logger?) -> [any BackgroundWork] {
        storeBackgroundWork(logger: logger) + state.withLock { state in state.order.flatMap { state.models[$0]?.backgroundWork ?? [] } }
    }

    /// The background work of the stores alone.
    public var storeBackgroundWork: [any BackgroundWork] { storeBackgroundWork(logger: logger) }

    /// `storeBackgroundWork`, logging to `logger`.
    public func storeBackgroundWork(logger: Logger?) -> [any BackgroundWork] {
        (volatileStore?.backgroundWork ?? []) + (persistentStore?.backgroundWork ?? [])
            // Only a store outside the process can be partly unreachable at load.
            + (volatileStore?.mayBlock == true ? [catchUp.work(logger: logger)] : [])
            + (stores.contains { $0.faults != nil } ? [TierFaultLog.work(stores: stores, interval: .seconds(1), logger: logger)] : [])
    }

    /// The volatile and the persistent store, those enabled.
    package var stores: [any EmbeddingStore] { [volatileStore, persistentStore].compactMap { $0 } }

    /// The faults the stores met while serving (`TierFaults`) that were not
    /// logged yet, one line each, logged now: for a caller that runs no
    /// background work (`hps lookup`) before it exits.
    @discardableResult
    package func logTierFaults() -> [String] {
        TierFaultLog.flush(stores, logger: logger)
    }

    /// A model folder path as written in the configuration, resolved against
    /// the configuration's folder, or the working folder if it is only there.
    package static func resolve(_ path: String, base: String?) -> String {
        guard let base, !path.hasPrefix("/") else { return path }
        let candidate = joinPath(base, path)
        if fileExists(candidate) || !fileExists(path) { return candidate }
        return path
    }

    /// Loads one member table from its folder into a store table, `rate` of its rows.
    package static func load(_ folder: SparseModelFolder, into table: any EmbeddingStoreTable, member: Int, model: String,
                     rate: Double, keyType: KeyType, parallelism: Int) throws -> TableLoadReport {
        let start = ContinuousClock.now
        let limit = Int((Double(folder.keyCount) * rate).rounded(.up))
        var counts = InsertCounts()
        var seen = 0
        var unavailable = 0
        var unavailableReason: String? = nil
        do {
            try folder.read(keyType: keyType) { (keys, vectors) throws(StoreError) in
                let n = min(keys.count, limit - seen)
                guard n > 0 else { return }
                do throws(StoreError) {
                    counts = counts + (try table.insert(member: member, keys: UnsafeBufferPointer(rebasing: keys[0..<n]),
                                                        vectors: UnsafeBufferPointer(rebasing: vectors[0..<(n * folder.vecSize)]),
                                                        parallelism: parallelism))
                } catch {
                    // A part of the store that cannot be reached (a Redis node
                    // down) does not stop the load: the rest is stored, and the
                    // caller serves the keys left out from below and catches up.
                    guard case let .partlyUnavailable(_, _, keys, stored, reason) = error else { throw error }
                    counts = counts + stored
                    unavailable += keys
                    unavailableReason = unavailableReason ?? reason
                }
                seen += n
            }
        } catch {
            switch error {
            case let .file(error): throw error
            case let .body(error): throw error
            }
        }
        let seconds = (ContinuousClock.now - start).seconds
        return TableLoadReport(table: folder.table, model: model, path: folder.path, keys: folder.keyCount,
                               loaded: counts.inserted - counts.evicted, replaced: counts.replaced,
                               evicted: counts.evicted, bytes: folder.keyCount * (8 + folder.vecSize * 4), seconds: seconds,
                               unavailable: unavailable, unavailableReason: unavailableReason)
    }
}

/// What loading one table read.
public struct TableLoadReport: Sendable, Equatable {
    /// The table's name.
    public var table: String
    /// The model's name.
    public var model: String
    /// The folder read.
    public var path: String
    /// Rows in the folder.
    public var keys: Int
    /// Distinct keys held after loading.
    public var loaded: Int
    /// Rows whose key repeated an earlier row (the last row wins).
    public var replaced: Int
    /// Keys evicted by the overflow margin while loading.
    public var evicted: Int
    /// Bytes of the folder's two files.
    public var bytes: Int
    /// Seconds spent loading.
    public var seconds: Double
    /// Rows left out because the part of the store that holds them could not
    /// be reached (`StoreError.partlyUnavailable`); 0 when all were stored.
    public var unavailable = 0
    /// Why they were left out (the first reason met), when some were.
    public var unavailableReason: String? = nil
}
