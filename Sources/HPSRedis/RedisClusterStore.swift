public import HPS
package import NIOCore
import NIOPosix
import Synchronization

/// The `redis_cluster` volatile store: tables kept in a Redis Cluster in
/// HugeCTR's layout (see `RedisClusterTable`).
///
/// The store protocol is synchronous, Redis is reached through SwiftNIO: each
/// call writes its commands from the caller's thread and blocks it with
/// `EventLoopFuture.wait()` until the event loops have the replies. Calls
/// must therefore not be made from the event loops or Swift's cooperative
/// pool: `mayBlock` is true, so `hps serve` runs these lookups on its thread pool.
///
/// Thread safety: all methods may be called concurrently.
package final class RedisClusterStore: EmbeddingStore, @unchecked Sendable {
    /// `redis_cluster`.
    package let kind = "redis_cluster"
    /// The cluster client.
    package let cluster: RedisCluster
    /// The `volatile_db` section the store was made from.
    package let configuration: VolatileDatabaseConfiguration
    let errors = ErrorCounter()
    private let tables = Locked<[String: RedisClusterTable]>([:])

    /// Opens the cluster named by `configuration.address` (comma-separated
    /// `host:port`), authenticating with `user_name` and `password` when a
    /// password is set, with `num_node_connections` connections per node.
    /// - Parameters:
    ///   - options: timeouts and back-off; the connection settings of
    ///     `configuration` override theirs.
    ///   - eventLoopGroup: the event loops of the connections (the store never shuts them down).
    /// - Throws: `ConfigurationError.invalidValue` for an address that does not parse or TLS asked for,
    ///   `RedisError.clusterUnreachable` (naming every address tried) when no node answers.
    package init(configuration: VolatileDatabaseConfiguration, options: RedisCluster.Options = .init(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard let seeds = NodeAddress.list(configuration.address) else {
            throw ConfigurationError.invalidValue(path: "volatile_db.address", expected: "a comma-separated list of host:port",
                                                  found: "\"\(configuration.address)\"")
        }
        if configuration.enableTLS {
            throw ConfigurationError.invalidValue(path: "volatile_db.enable_tls",
                                                  expected: "false (TLS to Redis is not implemented)", found: "true")
        }
        var options = options
        options.connectionsPerNode = configuration.numNodeConnections
        options.userName = configuration.userName
        options.password = configuration.password
        self.configuration = configuration
        cluster = try RedisCluster(seeds: seeds, options: options, eventLoopGroup: eventLoopGroup)
    }

    /// The cluster's connections, kept fresh while served and closed at shutdown.
    package var backgroundWork: [any BackgroundWork] { [cluster.connectionWork()] }

    /// Requests of lookups, inserts and erases that got no usable reply (a node
    /// refused, closed, timed out, was skipped after a failure, or answered with
    /// an error): their keys were reported as misses.
    package var errorCount: Int { errors.value }

    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable {
        try redisTable(tag, vecSize: vecSize, members: members)
    }

    /// Every `VectorStorage`: a value is the row as `VectorCodec` stores it.
    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                             storage: VectorStorage) throws(StoreError) -> any EmbeddingStoreTable {
        try redisTable(tag, vecSize: vecSize, members: members, storage: storage)
    }

    /// `createTable` with the concrete type.
    package func redisTable(_ tag: String, vecSize: Int, members: Int,
                            storage: VectorStorage = .fp32) throws(StoreError) -> RedisClusterTable {
        let result: Result<RedisClusterTable, StoreError> = tables.withLock { tables in
            if let existing = tables[tag] {
                guard existing.vecSize == vecSize && existing.memberCount == members else {
                    return .failure(.layoutMismatch(table: tag, vecSize: existing.vecSize, members: existing.memberCount,
                                                    requestedVecSize: vecSize, requestedMembers: members))
                }
                guard existing.storage == storage else {
                    return .failure(.storageMismatch(kind: kind, table: tag, stored: existing.storage, requested: storage))
                }
                return .success(existing)
            }
            let table = RedisClusterTable(tag: tag, vecSize: vecSize, storage: storage, members: members, store: self)
            tables[tag] = table
            return .success(table)
        }
        return try result.get()
    }

    package func table(_ tag: String) -> (any EmbeddingStoreTable)? {
        tables.withLock { $0[tag] }
    }

    /// Forgets the table and deletes its hashes (`UNLINK` of each
    /// partition's value and access hash).
    /// - Throws: `StoreError.backend` naming the hashes a node did not delete.
    package func dropTable(_ tag: String) throws(StoreError) {
        guard let table = tables.withLock({ $0.removeValue(forKey: tag) }) else { return }
        let hashes = (0..<table.partitionCount).flatMap { p in [(table.valueKeys[p], p), (table.timeKeys[p], p)] }
        let replies = cluster.execute(hashes.map { RedisClusterTable.request(slot: table.slots[$0.1], ["UNLINK", $0.0]) })
        let failed = zip(hashes, replies).compactMap { hash, reply -> (hash: String, error: RedisError)? in
            if case .failure(let error) = reply { return (hash.0, error) }
            return nil
        }
        if let first = failed.first {
            throw .backend(kind: kind, table: tag,
                           operation: "dropping table \(tag) (\(failed.count) hash(es) left behind, the first \(first.hash))",
                           cause: first.error)
        }
    }

    package var tableTags: [String] {
        tables.withLock { $0.keys.sorted() }
    }
}

extension StoreBackend {
    /// The `redis_cluster` volatile tier, given to a `HierarchicalParameterServer`
    /// whose configuration has `"volatile_db": {"type": "redis_cluster"}`.
    public static let redisCluster = StoreBackend(volatile: .redisCluster) { try RedisClusterStore(configuration: $0) }
}

/// A count of failed requests shared by a store and its tables.
final class ErrorCounter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
