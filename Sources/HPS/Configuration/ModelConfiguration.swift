/// One entry of `models`: a model's embedding tables and how they are cached on the GPUs.
///
/// Per-table lists (`sparseFiles`, `maxQueryKeysPerSample`, `vecSizes`, `defaultValues`,
/// `tableNames`) have one entry per table, in the same order. Defaults are those of HugeCTR's
/// parser.
public struct ModelConfiguration: Sendable, Equatable {
    /// The model's name (`model`), matching `[a-zA-Z0-9_-]{1,120}`.
    public var name: String = ""
    /// One folder per table holding `key` and `emb_vector` (`sparse_files`), as written in the
    /// configuration; relative paths are relative to the working directory, as in HugeCTR.
    public var sparseFiles: [String] = []
    /// The dense model file (`dense_file`); HPS does not read it.
    public var denseFile: String = ""
    /// The most samples in one lookup (`max_batch_size`, at least 1).
    public var maxBatchSize: Int = 64
    /// Whether lookups go through a GPU embedding cache (`gpucache`).
    public var gpuCache: Bool = true
    /// The cache capacity as a fraction of each table's keys (`gpucacheper`, in [0, 1]).
    public var gpuCachePercentage: Double = 0.2
    /// Below this hit rate missing keys are fetched synchronously; at or above it they get
    /// the default value now and are inserted in the background (`hit_rate_threshold`, in [0, 1]).
    public var hitRateThreshold: Double = 0.9
    /// Lookup buffers kept per device (`num_of_worker_buffer_in_pool`, at least 1).
    public var numWorkerBuffersInPool: Int = 1
    /// Refresh buffers kept per device (`num_of_refresher_buffer_in_pool`, at least 1).
    public var numRefresherBuffersInPool: Int = 1
    /// The fraction of the cache refreshed per iteration; above 0 the cache is also filled at
    /// start (`cache_refresh_percentage_per_iteration`, in [0, 1]).
    public var cacheRefreshPercentagePerIteration: Double = 0
    /// The GPUs the model is served on (`deployed_device_list`), distinct ids ≥ 0.
    public var deployedDevices: [Int] = []
    /// The most keys per sample for each table
    /// (`maxnum_catfeature_query_per_table_per_sample`, each at least 1).
    public var maxQueryKeysPerSample: [Int] = []
    /// The embedding vector length of each table (`embedding_vecsize_per_table`, each at least 1).
    public var vecSizes: [Int] = []
    /// The value of every element of a vector whose key is found nowhere, per table
    /// (`default_value_for_each_table`); padded with 0.0 when the configuration lists fewer.
    public var defaultValues: [Float] = []
    /// The most dense features per sample (`maxnum_des_feature_per_sample`).
    public var maxDenseFeaturesPerSample: Int = 26
    /// Seconds before the first cache refresh (`refresh_delay`).
    public var refreshDelay: Double = 0
    /// Seconds between cache refreshes; 0 disables refreshing (`refresh_interval`).
    public var refreshInterval: Double = 0
    /// The name of each table (`embedding_table_names`, default `sparse_embedding<i>`), unique
    /// within the model.
    public var tableNames: [String] = []
    /// Whether the static cache is forced (`use_static_table`); see `effectiveCacheType`.
    public var useStaticTable: Bool = false
    /// The requested cache kind (`embedding_cache_type`); see `effectiveCacheType`.
    public var embeddingCacheType: EmbeddingCacheType = .dynamic
    /// Whether lookups run on the caller's stream (`use_context_stream`).
    public var useContextStream: Bool = true
    /// Whether HugeCTR's own cache implementation is used (`use_hctr_cache_implementation`).
    public var useHCTRCacheImplementation: Bool = true
    /// Threads for background cache work (`thread_pool_size`, at least 1).
    public var threadPoolSize: Int = 16
    /// Whether the embedding cache is created at start (`init_ec`).
    public var initEmbeddingCache: Bool = true
    /// Whether host buffers are page-locked (`enable_pagelock`).
    public var enablePageLock: Bool = false
    /// Whether vectors are stored as fp8 e4m3 with a scale per row
    /// (`fp8_quant`, HugeCTR's key): sets `vectorStorage` to `fp8`.
    public var fp8Quant: Bool = false
    /// How every tier that copies the model's vectors stores them
    /// (`vector_storage`, our extension: `fp32`, `fp16`, `bf16`, `int8`,
    /// `fp8`; `fp8` when `fp8_quant` is true, else `fp32`).
    public var vectorStorage: VectorStorage = .fp32
    /// Whether this model's tables of equal vector size are fused (`fuse_embedding_table`);
    /// defaults to the top-level flag, and takes effect only when that flag is on too.
    public var fuseEmbeddingTable: Bool = false
    /// How the model's GPU tables are spread over its GPUs (`gpu_sharding`,
    /// our extension: `replicated`, the default and HugeCTR's behaviour,
    /// `row_wise` or `table_wise`).
    public var gpuSharding: GPUSharding = .replicated
    /// The shards of a `row_wise` or `table_wise` model (`gpu_shards`, our
    /// extension, at least 1), placed on `effectiveDevices` in turn; nil: one
    /// per device.
    public var gpuShards: Int?

    /// A model with the given tables and HugeCTR's defaults for everything else: default
    /// values 0.0, table names `sparse_embedding<i>`, served on device 0.
    public init(name: String, sparseFiles: [String], vecSizes: [Int], maxQueryKeysPerSample: [Int]) {
        self.name = name
        self.sparseFiles = sparseFiles
        self.vecSizes = vecSizes
        self.maxQueryKeysPerSample = maxQueryKeysPerSample
        self.defaultValues = Array(repeating: 0, count: sparseFiles.count)
        self.tableNames = sparseFiles.indices.map { "sparse_embedding\($0)" }
        self.deployedDevices = [0]
    }

    /// The number of tables.
    public var tableCount: Int { sparseFiles.count }

    /// The cache kind in effect: `use_static_table: true` forces the static cache.
    public var effectiveCacheType: EmbeddingCacheType {
        useStaticTable ? .static : embeddingCacheType
    }

    /// The GPUs the model is served from: `deployed_device_list`, or GPU 0 when the list is empty.
    public var effectiveDevices: [Int] {
        deployedDevices.isEmpty ? [0] : deployedDevices
    }

    /// The most keys one lookup into `table` may carry:
    /// `maxBatchSize × maxQueryKeysPerSample[table]`. `table` must be below `tableCount`.
    public func maxKeysPerLookup(table: Int) -> Int {
        maxBatchSize * maxQueryKeysPerSample[table]
    }

    /// Whether `name` is a valid model name: 1 to 120 ASCII letters, digits, `_` or `-`.
    public static func isValidName(_ name: String) -> Bool {
        let utf8 = name.utf8
        return (1...120).contains(utf8.count) && utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// Reads one entry of `models`, appending non-fatal notes to `warnings`.
    init(
        reading reader: inout ConfigurationReader, globalFuseEmbeddingTable: Bool,
        warnings: inout [String]
    ) throws(ConfigurationError) {
        let path = reader.path
        name = try reader.string("model", default: name)
        guard Self.isValidName(name) else {
            throw .invalidValue(
                path: reader.path(of: "model"), expected: "1 to 120 letters, digits, '_' or '-'",
                found: JSONValue.string(name).serialized())
        }
        sparseFiles = try reader.requiredArray("sparse_files", ConfigurationReader.string)
        guard !sparseFiles.isEmpty else {
            throw .invalidValue(path: reader.path(of: "sparse_files"), expected: "a non-empty array", found: "[]")
        }
        let tables = sparseFiles.count

        /// Fails unless a per-table list has one entry per table.
        func checkCount(_ key: String, _ count: Int) throws(ConfigurationError) {
            guard count == tables else {
                throw .countMismatch(path: "\(path).\(key)", count: count, reference: "sparse_files", referenceCount: tables)
            }
        }

        denseFile = try reader.string("dense_file", default: denseFile)
        maxBatchSize = try reader.int("max_batch_size", default: maxBatchSize, mustBe: "at least 1") { $0 >= 1 }
        gpuCache = try reader.bool("gpucache", default: gpuCache)
        gpuCachePercentage = try reader.double(
            "gpucacheper", default: gpuCachePercentage, mustBe: "between 0 and 1") { (0...1).contains($0) }
        hitRateThreshold = try reader.double(
            "hit_rate_threshold", default: hitRateThreshold, mustBe: "between 0 and 1") { (0...1).contains($0) }
        numWorkerBuffersInPool = try reader.int(
            "num_of_worker_buffer_in_pool", default: numWorkerBuffersInPool, mustBe: "at least 1") { $0 >= 1 }
        numRefresherBuffersInPool = try reader.int(
            "num_of_refresher_buffer_in_pool", default: numRefresherBuffersInPool, mustBe: "at least 1") { $0 >= 1 }
        cacheRefreshPercentagePerIteration = try reader.double(
            "cache_refresh_percentage_per_iteration", default: cacheRefreshPercentagePerIteration,
            mustBe: "between 0 and 1") { (0...1).contains($0) }

        deployedDevices = try reader.requiredArray("deployed_device_list") { (value, elementPath) throws(ConfigurationError) in
            try ConfigurationReader.int(value, path: elementPath, mustBe: "a device id of at least 0") { $0 >= 0 }
        }
        guard !deployedDevices.isEmpty else {
            throw .invalidValue(
                path: reader.path(of: "deployed_device_list"), expected: "a non-empty array", found: "[]")
        }
        for (index, device) in deployedDevices.enumerated() where deployedDevices[..<index].contains(device) {
            throw .invalidValue(
                path: "\(reader.path(of: "deployed_device_list"))[\(index)]",
                expected: "a device id not listed before", found: "\(device)")
        }

        maxQueryKeysPerSample = try reader.requiredArray("maxnum_catfeature_query_per_table_per_sample") {
            (value, elementPath) throws(ConfigurationError) in
            try ConfigurationReader.int(value, path: elementPath, mustBe: "at least 1") { $0 >= 1 }
        }
        try checkCount("maxnum_catfeature_query_per_table_per_sample", maxQueryKeysPerSample.count)

        vecSizes = try reader.requiredArray("embedding_vecsize_per_table") { (value, elementPath) throws(ConfigurationError) in
            try ConfigurationReader.int(value, path: elementPath, mustBe: "at least 1") { $0 >= 1 }
        }
        try checkCount("embedding_vecsize_per_table", vecSizes.count)

        defaultValues = try reader.requiredArray("default_value_for_each_table") { (value, elementPath) throws(ConfigurationError) in
            // A default value is a float32 element of every missed key's vector: a
            // number beyond float32's range would become infinity, which no vector
            // holds and a written configuration cannot say (JSON has no infinity).
            let number = try ConfigurationReader.double(value, path: elementPath)
            guard Float(number).isFinite else {
                throw .invalidValue(path: elementPath, expected: "a number within float32's range (±3.4e38)",
                                    found: value.serialized())
            }
            return Float(number)
        }
        if defaultValues.count > tables {
            try checkCount("default_value_for_each_table", defaultValues.count)
        } else if defaultValues.count < tables {
            warnings.append(
                "\(path).default_value_for_each_table has \(ConfigurationError.entries(defaultValues.count)) "
                    + "but sparse_files has \(tables); the missing default values are 0.0")
            defaultValues += Array(repeating: 0, count: tables - defaultValues.count)
        }

        maxDenseFeaturesPerSample = try reader.int(
            "maxnum_des_feature_per_sample", default: maxDenseFeaturesPerSample, mustBe: "at least 0") { $0 >= 0 }
        refreshDelay = try reader.double("refresh_delay", default: refreshDelay, mustBe: "at least 0") { $0 >= 0 }
        refreshInterval = try reader.double("refresh_interval", default: refreshInterval, mustBe: "at least 0") { $0 >= 0 }

        if let names = try reader.array("embedding_table_names", ConfigurationReader.string) {
            try checkCount("embedding_table_names", names.count)
            tableNames = names
        } else {
            tableNames = (0..<tables).map { "sparse_embedding\($0)" }
        }
        let namesPath = reader.path(of: "embedding_table_names")
        for (index, tableName) in tableNames.enumerated() {
            if tableName.isEmpty {
                throw .invalidValue(path: "\(namesPath)[\(index)]", expected: "a non-empty string", found: "\"\"")
            }
            if let first = tableNames[..<index].firstIndex(of: tableName) {
                throw .duplicateTableName(name: tableName, path: "\(namesPath)[\(index)]", firstPath: "\(namesPath)[\(first)]")
            }
        }

        useStaticTable = try reader.bool("use_static_table", default: useStaticTable)
        embeddingCacheType = try reader.choice("embedding_cache_type", default: embeddingCacheType)
        useContextStream = try reader.bool("use_context_stream", default: useContextStream)
        useHCTRCacheImplementation = try reader.bool("use_hctr_cache_implementation", default: useHCTRCacheImplementation)
        threadPoolSize = try reader.int("thread_pool_size", default: threadPoolSize, mustBe: "at least 1") { $0 >= 1 }
        initEmbeddingCache = try reader.bool("init_ec", default: initEmbeddingCache)
        enablePageLock = try reader.bool("enable_pagelock", default: enablePageLock)
        fp8Quant = try reader.bool("fp8_quant", default: fp8Quant)
        vectorStorage = try reader.choice("vector_storage", default: fp8Quant ? .fp8 : vectorStorage)
        if fp8Quant && vectorStorage != .fp8 {
            throw .invalidValue(path: reader.path(of: "vector_storage"),
                                expected: "fp8 (or no vector_storage) while fp8_quant is true; set fp8_quant to false to store \(vectorStorage.rawValue)",
                                found: "\"\(vectorStorage.rawValue)\"")
        }
        fuseEmbeddingTable = try reader.bool("fuse_embedding_table", default: globalFuseEmbeddingTable)
        gpuSharding = try reader.choice("gpu_sharding", default: gpuSharding)
        if let shards = reader.value("gpu_shards") {
            gpuShards = try ConfigurationReader.int(shards, path: reader.path(of: "gpu_shards"), mustBe: "at least 1") { $0 >= 1 }
            guard gpuSharding != .replicated else {
                throw .invalidValue(path: reader.path(of: "gpu_shards"),
                                    expected: "no gpu_shards for a replicated model; set gpu_sharding to row_wise or table_wise to shard it",
                                    found: shards.serialized())
            }
        }
        if gpuSharding != .replicated && !gpuCache {
            warnings.append("\(reader.path(of: "gpu_sharding")) is \(gpuSharding.rawValue) but gpucache is false; the model is served from the CPU and not sharded")
        }
        // Written by HugeCTR's docs and the Triton backend; HPS itself never reads them.
        reader.ignore("label_dim", "slot_num")
    }

    /// Every key of the model, so that reading it back gives an equal model.
    func jsonValue() -> JSONValue {
        func integers(_ values: [Int]) -> JSONValue { .array(values.map { .integer(Int64($0)) }) }
        return .object(JSONObject([
            ("model", .string(name)),
            ("sparse_files", .array(sparseFiles.map(JSONValue.string))),
            ("dense_file", .string(denseFile)),
            ("max_batch_size", .integer(Int64(maxBatchSize))),
            ("gpucache", .bool(gpuCache)),
            ("gpucacheper", .double(gpuCachePercentage)),
            ("hit_rate_threshold", .double(hitRateThreshold)),
            ("num_of_worker_buffer_in_pool", .integer(Int64(numWorkerBuffersInPool))),
            ("num_of_refresher_buffer_in_pool", .integer(Int64(numRefresherBuffersInPool))),
            ("cache_refresh_percentage_per_iteration", .double(cacheRefreshPercentagePerIteration)),
            ("deployed_device_list", integers(deployedDevices)),
            ("maxnum_catfeature_query_per_table_per_sample", integers(maxQueryKeysPerSample)),
            ("embedding_vecsize_per_table", integers(vecSizes)),
            ("default_value_for_each_table", .array(defaultValues.map { .double(Double($0)) })),
            ("maxnum_des_feature_per_sample", .integer(Int64(maxDenseFeaturesPerSample))),
            ("refresh_delay", .double(refreshDelay)),
            ("refresh_interval", .double(refreshInterval)),
            ("embedding_table_names", .array(tableNames.map(JSONValue.string))),
            ("use_static_table", .bool(useStaticTable)),
            ("embedding_cache_type", .string(embeddingCacheType.rawValue)),
            ("use_context_stream", .bool(useContextStream)),
            ("use_hctr_cache_implementation", .bool(useHCTRCacheImplementation)),
            ("thread_pool_size", .integer(Int64(threadPoolSize))),
            ("init_ec", .bool(initEmbeddingCache)),
            ("enable_pagelock", .bool(enablePageLock)),
            ("fp8_quant", .bool(fp8Quant)),
            ("vector_storage", .string(vectorStorage.rawValue)),
            ("fuse_embedding_table", .bool(fuseEmbeddingTable)),
            ("gpu_sharding", .string(gpuSharding.rawValue)),
        ] + (gpuShards.map { [("gpu_shards", JSONValue.integer(Int64($0)))] } ?? [])))
    }
}
