
/// The store backends that live outside the core module (Redis Cluster,
/// RocksDB, the memory-mapped tier), registered by their modules so that
/// `HierarchicalParameterServer` can assemble what a configuration names.
///
/// A module registers its factories once, before servers are built (the
/// `hps` executable does so at start for every module it was built with). A
/// type with no factory is reported as not available in this build.
///
/// Thread safety: registration and lookup may happen from any thread.
public enum StoreBackends {
    /// Makes the volatile store of a `volatile_db` section.
    public typealias VolatileFactory = @Sendable (VolatileDatabaseConfiguration) throws -> any EmbeddingStore
    /// Makes the persistent store of a `persistent_db` section.
    public typealias PersistentFactory = @Sendable (PersistentDatabaseConfiguration) throws -> any EmbeddingStore

    private static let volatileFactories = Locked<[VolatileDatabaseType: VolatileFactory]>([:])
    private static let persistentFactories = Locked<[PersistentDatabaseType: PersistentFactory]>([:])
    private static let updateSources = Locked<Set<UpdateSourceType>>([])

    /// Registers the factory of a volatile store type, replacing any earlier one.
    public static func register(volatile type: VolatileDatabaseType, _ factory: @escaping VolatileFactory) {
        volatileFactories.withLock { $0[type] = factory }
    }

    /// Registers the factory of a persistent store type, replacing any earlier one.
    public static func register(persistent type: PersistentDatabaseType, _ factory: @escaping PersistentFactory) {
        persistentFactories.withLock { $0[type] = factory }
    }

    /// Records that this build can follow an update source type (its module
    /// runs the consumers), so that a configuration naming it is served.
    public static func register(updateSource type: UpdateSourceType) {
        _ = updateSources.withLock { $0.insert(type) }
    }

    /// Whether this build can follow an update source type (`null` always).
    public static func hasUpdateSource(_ type: UpdateSourceType) -> Bool {
        type == .null || updateSources.withLock { $0.contains(type) }
    }

    /// The factory of a volatile store type, if this build has one.
    public static func factory(volatile type: VolatileDatabaseType) -> VolatileFactory? {
        volatileFactories.withLock { $0[type] }
    }

    /// The factory of a persistent store type, if this build has one.
    public static func factory(persistent type: PersistentDatabaseType) -> PersistentFactory? {
        persistentFactories.withLock { $0[type] }
    }
}

/// A store that serves tables straight from their sparse model folders
/// instead of holding copies (the memory-mapped tier): the server attaches
/// the folders rather than inserting their rows.
public protocol FileBackedStore: EmbeddingStore {
    /// Makes table `tag` serve the member tables in `folders` (one folder per
    /// member, in member order), building or reusing whatever index it keeps
    /// beside them.
    func attach(_ tag: String, folders: [SparseModelFolder], keyType: KeyType) throws -> any EmbeddingStoreTable
}
