/// A tier that lives outside the core module (Redis Cluster, RocksDB, the
/// memory-mapped tier) or an update source (Kafka), as a value given to
/// `HierarchicalParameterServer`: each such module declares its own
/// (`StoreBackend.redisCluster` in HPSRedis, `.rocksDB` in HPSRocksDB with
/// the RocksDB trait, `.mapped` in HPSMapped, `.kafka` in HPSKafka with the
/// Kafka trait). The hash maps are always there.
///
/// ```swift
/// import HPS
/// import HPSRedis
///
/// let server = try await HierarchicalParameterServer.open(configurationFile: "hps.json",
///                                                         backends: [.redisCluster])
/// ```
///
/// A configuration that names a tier no given backend provides is refused
/// with an error that names the key (`volatile_db.type`, …) and the backend to pass.
public struct StoreBackend: Sendable {
    /// Makes the volatile store of a `volatile_db` section.
    package typealias VolatileFactory = @Sendable (VolatileDatabaseConfiguration) throws -> any EmbeddingStore
    /// Makes the persistent store of a `persistent_db` section.
    package typealias PersistentFactory = @Sendable (PersistentDatabaseConfiguration) throws -> any EmbeddingStore

    package enum Provides: Sendable {
        case volatile(VolatileDatabaseType, VolatileFactory)
        case persistent(PersistentDatabaseType, PersistentFactory)
        case updateSource(UpdateSourceType)
    }

    package let provides: Provides

    /// A backend that makes the volatile stores of `type`.
    package init(volatile type: VolatileDatabaseType, _ factory: @escaping VolatileFactory) {
        provides = .volatile(type, factory)
    }

    /// A backend that makes the persistent stores of `type`.
    package init(persistent type: PersistentDatabaseType, _ factory: @escaping PersistentFactory) {
        provides = .persistent(type, factory)
    }

    /// A backend that follows an update source of `type` (its module runs the consumers).
    package init(updateSource type: UpdateSourceType) {
        provides = .updateSource(type)
    }

    /// The configuration's name of what it provides (`redis_cluster`, `rocks_db`, `mapped`, `kafka_message_queue`).
    public var name: String {
        switch provides {
        case let .volatile(type, _): type.rawValue
        case let .persistent(type, _): type.rawValue
        case let .updateSource(type): type.rawValue
        }
    }
}

extension [StoreBackend] {
    /// The factory of a volatile store type among these backends (the last given wins).
    package func factory(volatile type: VolatileDatabaseType) -> StoreBackend.VolatileFactory? {
        for backend in reversed() {
            if case let .volatile(provided, factory) = backend.provides, provided == type { return factory }
        }
        return nil
    }

    /// The factory of a persistent store type among these backends (the last given wins).
    package func factory(persistent type: PersistentDatabaseType) -> StoreBackend.PersistentFactory? {
        for backend in reversed() {
            if case let .persistent(provided, factory) = backend.provides, provided == type { return factory }
        }
        return nil
    }

    /// Whether these backends follow an update source type (`null` always).
    package func hasUpdateSource(_ type: UpdateSourceType) -> Bool {
        type == .null || contains { if case .updateSource(type) = $0.provides { true } else { false } }
    }
}

