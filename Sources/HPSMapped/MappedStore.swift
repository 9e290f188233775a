package import HPS

/// The `mapped` persistent tier, an extension of HugeCTR's `persistent_db`
/// schema (`"persistent_db": {"type": "mapped"}`): tables are served straight
/// from their HugeCTR sparse model folders, mapped read-only and shared,
/// through an index kept beside each folder's files (`<folder>/hps_index`,
/// see `MappedIndexHeader`). A restart maps the existing index instead of
/// loading the table, so it is ready to serve at once; the page cache holds
/// the files for every process serving them.
///
/// `persistent_db.path` is where the index of a model folder that cannot hold
/// its own (a read-only folder) is kept, named by the folder's path;
/// `num_threads` and `max_batch_size` are not used: lookups are memory reads.
/// The tier is read-only: inserts are refused and erases erase nothing.
///
/// Thread safety: every method may be called concurrently.
package final class MappedStore: FileBackedStore, @unchecked Sendable {
    /// `mapped`.
    package let kind = "mapped"
    /// Where indexes go for model folders that cannot hold their own, or nil.
    package let indexFolder: String?
    private let tables = Locked<[String: MappedTable]>([:])
    /// Model files that shrank, were rewritten or replaced while served.
    private let tierFaults = TierFaults()

    /// Creates an empty store; tables come from `attach`.
    /// - Parameter indexFolder: where to keep the index of a folder that cannot
    ///   hold its own (a read-only folder); nil to require every folder to.
    package init(indexFolder: String? = nil) {
        self.indexFolder = indexFolder
    }

    /// Creates the store of a `persistent_db` section: its `path` is the
    /// index folder for read-only model folders.
    package convenience init(configuration: PersistentDatabaseConfiguration) {
        self.init(indexFolder: configuration.path)
    }

    /// Serves `folders` (one per member) as table `tag`, reusing each folder's
    /// index if it matches the files and building it otherwise.
    /// - Throws: `MappedError` for a file that cannot be mapped or an index that
    ///   cannot be written, or members of different vector sizes.
    package func attach(_ tag: String, folders: [SparseModelFolder], keyType: KeyType) throws -> any EmbeddingStoreTable {
        try attachTable(tag, folders: folders, keyType: keyType)
    }

    /// `attach`, returning the concrete table (which says whether indexes were rebuilt).
    package func attachTable(_ tag: String, folders: [SparseModelFolder], keyType: KeyType = .int64) throws(MappedError) -> MappedTable {
        guard let first = folders.first else { throw .notAttached(table: tag) }
        var members: [MappedMember] = []
        for folder in folders {
            guard folder.vecSize == first.vecSize else {
                throw .vecSizeMismatch(table: tag, path: folder.vectorPath, vecSize: folder.vecSize, expected: first.vecSize)
            }
            members.append(try MappedMember(folder: folder, keyType: keyType, indexFolder: indexFolder))
        }
        let table = MappedTable(tag: tag, vecSize: first.vecSize, members: members, faults: tierFaults)
        tables.withLock { $0[tag] = table }
        return table
    }

    /// Refused: the mapped tier serves only model folders (`attach`).
    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable {
        if let table = tables.withLock({ $0[tag] }) {
            guard table.vecSize == vecSize && table.memberCount == members else {
                throw .layoutMismatch(table: tag, vecSize: table.vecSize, members: table.memberCount,
                                      requestedVecSize: vecSize, requestedMembers: members)
            }
            return table
        }
        throw .backend(kind: kind, table: tag, operation: nil, cause: MappedError.notAttached(table: tag))
    }

    package func table(_ tag: String) -> (any EmbeddingStoreTable)? {
        tables.withLock { $0[tag] }
    }

    /// Detaches the table: the model files stay where they are (the tier
    /// only maps them); the mapping goes when the last reference does.
    package func dropTable(_ tag: String) {
        tables.withLock { _ = $0.removeValue(forKey: tag) }
    }

    package var tableTags: [String] {
        tables.withLock { $0.keys.sorted() }
    }

    /// Checks each second whether a served model file was written in place,
    /// replaced or removed (`checkFiles`); a file that shrinks is found by the
    /// first read past its end, without waiting for this.
    package var backgroundWork: [any BackgroundWork] {
        [PeriodicWork(name: "watch of the mapped tier's model files", interval: .seconds(1)) { [self] in checkFiles() }]
    }

    /// Model files that shrank, were rewritten or replaced while served.
    package var faults: TierFaults? { tierFaults }

    /// Compares every table's files with those mapped, now (what the watch does each interval).
    package func checkFiles() {
        for table in tables.withLock({ Array($0.values) }) { table.checkFiles() }
    }
}
