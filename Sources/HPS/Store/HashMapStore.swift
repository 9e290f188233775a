
/// The in-process volatile store (`hash_map` and `parallel_hash_map`): tables
/// of partitioned hash maps in this process's memory.
///
/// Thread safety: all methods may be called concurrently.
package final class HashMapStore: EmbeddingStore, @unchecked Sendable {
    /// `hash_map`.
    package let kind = "hash_map"
    /// In this process's memory: a lookup never waits.
    package var mayBlock: Bool { false }
    /// Partitions per table.
    package let partitionCount: Int
    let overflow: OverflowSettings
    private let tables = Locked<[String: HashMapTable]>([:])

    /// Creates an empty store.
    /// - Parameters:
    ///   - partitions: `num_partitions`, at least 1.
    ///   - overflowMargin: keys per partition before eviction (`overflow_margin`).
    ///   - overflowPolicy: which keys are evicted first.
    ///   - overflowResolutionTarget: the fraction of the margin kept after an eviction.
    package init(partitions: Int, overflowMargin: UInt64 = .max, overflowPolicy: OverflowPolicy = .evictRandom,
                overflowResolutionTarget: Double = 0.8) {
        partitionCount = max(1, partitions)
        overflow = OverflowSettings(margin: overflowMargin >= UInt64(Int.max) ? .max : Int(overflowMargin),
                                    policy: overflowPolicy, resolutionTarget: overflowResolutionTarget)
    }

    /// Creates a store from the `volatile_db` section of a configuration.
    package convenience init(_ configuration: VolatileDatabaseConfiguration) {
        self.init(partitions: configuration.numPartitions, overflowMargin: configuration.overflowMargin,
                  overflowPolicy: configuration.overflowPolicy,
                  overflowResolutionTarget: configuration.overflowResolutionTarget)
    }

    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable {
        try hashMapTable(tag, vecSize: vecSize, members: members, expectedKeys: expectedKeys)
    }

    /// Every `VectorStorage`: rows are quantized as they are inserted.
    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                             storage: VectorStorage) throws(StoreError) -> any EmbeddingStoreTable {
        try hashMapTable(tag, vecSize: vecSize, members: members, expectedKeys: expectedKeys, storage: storage)
    }

    /// Forgets the table; its memory goes when the last reference to it does.
    package func dropTable(_ tag: String) {
        tables.withLock { _ = $0.removeValue(forKey: tag) }
    }

    /// `createTable` with the concrete type, for callers that want its extras.
    package func hashMapTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                              storage: VectorStorage = .fp32) throws(StoreError) -> HashMapTable {
        let result: Result<HashMapTable, StoreError> = tables.withLock { tables in
            if let existing = tables[tag] {
                guard existing.vecSize == vecSize && existing.memberCount == members && existing.storage == storage else {
                    return .failure(.layoutMismatch(table: tag, vecSize: existing.vecSize, members: existing.memberCount,
                                                    requestedVecSize: vecSize, requestedMembers: members))
                }
                return .success(existing)
            }
            let table = HashMapTable(tag: tag, vecSize: vecSize, storage: storage, members: members, partitions: partitionCount,
                                     expectedKeys: expectedKeys, overflow: overflow)
            tables[tag] = table
            return .success(table)
        }
        return try result.get()
    }

    package func table(_ tag: String) -> (any EmbeddingStoreTable)? {
        tables.withLock { $0[tag] }
    }

    package var tableTags: [String] {
        tables.withLock { $0.keys.sorted() }
    }
}
