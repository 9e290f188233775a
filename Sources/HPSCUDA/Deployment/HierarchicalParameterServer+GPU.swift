public import HPS
public import Logging

/// The entry points that serve models from GPUs: `HPS` alone serves from the
/// CPU; with HPSCUDA, a `GPUCacheFactory` builds the GPU tables and caches of
/// every model with `gpucache: true`, on each device of its `deployed_device_list`.
extension HierarchicalParameterServer {
    /// Builds the tiers, loads the tables, and puts the GPU tables and caches
    /// of `gpu` in front of them.
    ///
    /// ```swift
    /// let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: "hps.json"),
    ///                                              gpu: GPUCacheFactory())
    /// let vectors = try server.session(model: "8_table", device: 0).lookup(table: 0, keys: [1, 2, 3])
    /// ```
    /// - Parameters: as `init(configuration:backends:parallelism:logger:loading:)`;
    ///   `gpu` nil serves every model from the CPU.
    /// - Throws: `HPSError`, of code `device` when a GPU cannot be opened or
    ///   cannot hold a model's tables (its cause a `CUDAError`), else as the
    ///   CPU initializer throws.
    public convenience init(configuration: HPSConfiguration, backends: [StoreBackend] = [], parallelism: Int? = nil,
                            logger: Logger? = nil, gpu: GPUCacheFactory?, loading: [String]? = nil) throws {
        try self.init(configuration: configuration, backends: backends, parallelism: parallelism, logger: logger,
                      caches: gpu, loading: loading)
    }

    /// Reads the configuration file at `path` and opens it as
    /// `init(configuration:backends:parallelism:logger:gpu:loading:)` does,
    /// on a thread of its own.
    public static func open(configurationFile path: String, backends: [StoreBackend] = [], parallelism: Int? = nil,
                            logger: Logger? = nil, gpu: GPUCacheFactory?) async throws -> HierarchicalParameterServer {
        try await open(configurationFile: path, backends: backends, parallelism: parallelism, logger: logger, caches: gpu)
    }
}
