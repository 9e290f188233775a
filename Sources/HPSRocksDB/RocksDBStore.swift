#if RocksDB
import CRocksDB
import Glibc
package import HPS

/// The `rocks_db` persistent tier: one RocksDB database at `persistent_db.path`
/// holding one column family per table.
///
/// Layout, per table `tag` (column family `tag`):
/// - key: 12 bytes, the member as a big-endian UInt32 then the key as a
///   big-endian UInt64 bit pattern, so that fused members never share a key;
/// - value: `vecSize` float32s, native (little-endian) byte order.
/// In the `default` column family, `hps/layout/<tag>` holds "vecSize,members"
/// and `hps/count/<tag>` the exact number of keys (an Int64, little-endian),
/// updated in the same write batch as the keys it counts.
///
/// Writes use `sync = true`: an insert or erase returns only after RocksDB's
/// write-ahead log is on disk, so an acknowledged write survives a killed
/// process and a power loss. Loading pays one fsync per `max_batch_size` keys.
///
/// Thread safety: every method may be called concurrently; the writes of one
/// table are serialized (they read and update its key count).
package final class RocksDBStore: EmbeddingStore, @unchecked Sendable {
    /// `rocks_db`.
    package let kind = "rocks_db"
    /// The database folder.
    package let path: String
    /// Whether the database was opened read-only.
    package let readOnly: Bool
    /// The most keys read or written per RocksDB call.
    package let maxBatchSize: Int
    let context: RocksContext
    private var database: RocksDatabase { context.database }
    private var defaultFamily: RocksColumnFamily { context.defaultFamily }
    private var readOptions: RocksReadOptions { context.readOptions }
    private let familyOptions = RocksOptions()
    private let state: Locked<[String: RocksDBTable]>
    private let families: Locked<[String: RocksColumnFamily]>

    /// RocksDB's LOG file records fatal errors only (4, `FATAL_LEVEL`): on a
    /// full disk, Debian's RocksDB 7.8 (built with assertions) aborts the
    /// process when it writes a LOG line after a LOG write failed, and the
    /// lines it writes about a failed write are of every lower level (a full
    /// disk aborted a load at `ERROR_LEVEL`; at this level the load fails
    /// with RocksDB's error, `RocksDBError.noSpace`). What goes wrong reaches
    /// the user through the errors of the calls and `faults` instead.
    static let infoLogLevel: Int32 = 4

    /// The block cache shared by the tables of one store. The page cache holds
    /// the rest of the files; this only saves copying hot blocks out of it.
    static let blockCacheBytes = 256 << 20

    /// Opens (or creates) the database of a `persistent_db` section.
    /// - Throws: `RocksDBError.missing` (read_only and no database),
    ///   `.locked` (the LOCK is held), `.corrupt`, or `.operation`.
    package convenience init(configuration: PersistentDatabaseConfiguration) throws(RocksDBError) {
        try self.init(path: configuration.path, readOnly: configuration.readOnly,
                      numThreads: configuration.numThreads, maxBatchSize: configuration.maxBatchSize)
    }

    /// Opens (or, unless `readOnly`, creates) the database at `path`.
    /// - Parameters:
    ///   - numThreads: RocksDB's background threads (`rocksdb_options_increase_parallelism`).
    ///   - maxBatchSize: the most keys per MultiGet or write batch.
    ///   - mmapReads: read table files through mmap instead of pread. Off by
    ///     default: a table file that shrinks, or a disk that fails a read,
    ///     then raises SIGBUS inside RocksDB and ends the process, where pread
    ///     returns an error that a lookup answers as a miss (`faults`).
    ///     `hps bench --tier-rates` measures both.
    package init(path: String, readOnly: Bool = false, numThreads: Int = 16, maxBatchSize: Int = 65536,
                mmapReads: Bool = false) throws(RocksDBError) {
        self.path = path
        self.readOnly = readOnly
        self.maxBatchSize = max(1, maxBatchSize)
        let options = RocksOptions()
        rocksdb_options_increase_parallelism(options.handle, Int32(clamping: max(1, numThreads)))
        rocksdb_options_set_create_if_missing(options.handle, readOnly ? 0 : 1)
        rocksdb_options_set_create_missing_column_families(options.handle, readOnly ? 0 : 1)
        // Fail on a damaged database rather than open a part of it.
        rocksdb_options_set_paranoid_checks(options.handle, 1)
        rocksdb_options_set_info_log_level(options.handle, Self.infoLogLevel)
        let tableOptions = RocksTableOptions(blockCacheBytes: Self.blockCacheBytes)
        tableOptions.apply(to: options)
        tableOptions.apply(to: familyOptions)
        rocksdb_options_set_allow_mmap_reads(options.handle, mmapReads ? 1 : 0)

        let exists = access(path + "/CURRENT", F_OK) == 0
        if readOnly && !exists { throw .missing(path: path) }
        var names = ["default"]
        if exists {
            var count = 0
            let (list, message) = withErrorPointer { rocksdb_list_column_families(options.handle, path, &count, $0) }
            if let message { throw Self.classify(path: path, operation: "list the column families", message: message) }
            if let list {
                names = (0..<count).map { String(cString: list[$0]!) }
                rocksdb_list_column_families_destroy(list, count)
            }
        }
        let cNames = names.map { strdup($0) }
        defer { for name in cNames { free(name) } }
        let optionList = [OpaquePointer?](repeating: familyOptions.handle, count: names.count)
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let (db, message) = withErrorPointer { error in
            cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { namePointers in
                optionList.withUnsafeBufferPointer { opts in
                    handles.withUnsafeMutableBufferPointer { out in
                        readOnly
                            ? rocksdb_open_for_read_only_column_families(options.handle, path, Int32(names.count), namePointers.baseAddress,
                                                                         opts.baseAddress, out.baseAddress, 0, error)
                            : rocksdb_open_column_families(options.handle, path, Int32(names.count), namePointers.baseAddress,
                                                           opts.baseAddress, out.baseAddress, error)
                    }
                }
            }
        }
        if let message { throw Self.classify(path: path, operation: "open the database", message: message) }
        guard let db else { throw .operation(path: path, operation: "open the database", message: "no handle returned") }
        let database = RocksDatabase(handle: db, path: path)
        var opened: [String: RocksColumnFamily] = [:]
        for (name, handle) in zip(names, handles) {
            guard let handle else { continue }
            opened[name] = RocksColumnFamily(handle: handle, database: database)
        }
        guard let defaultFamily = opened.removeValue(forKey: "default") else {
            throw .corrupt(path: path, message: "the default column family is missing")
        }
        context = RocksContext(database: database, defaultFamily: defaultFamily, readOnly: readOnly, maxBatchSize: self.maxBatchSize)
        families = Locked(opened)
        state = Locked([:])
        // Tables written by an earlier run.
        var tables: [String: RocksDBTable] = [:]
        for (tag, family) in opened {
            guard let layout = try readLayout(tag) else { continue }
            let count = try readCount(tag)
            tables[tag] = RocksDBTable(context: context, family: family, tag: tag, vecSize: layout.vecSize,
                                       storage: layout.storage, members: layout.members, count: count)
        }
        state.withLock { $0 = tables }
    }

    static func classify(path: String, operation: String, message: String) -> RocksDBError {
        RocksContext.classify(path: path, operation: operation, message: message)
    }

    // MARK: Metadata

    static func layoutKey(_ tag: String) -> String { "hps/layout/" + tag }
    static func countKey(_ tag: String) -> String { "hps/count/" + tag }

    /// Reads a value of the default column family.
    func readMetadata(_ key: String) throws(RocksDBError) -> [UInt8]? {
        var length = 0
        let (value, message) = withErrorPointer { error in
            rocksdb_get_cf(database.handle, readOptions.handle, defaultFamily.handle, key, key.utf8.count, &length, error)
        }
        if let message { throw Self.classify(path: path, operation: "read \(key)", message: message) }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    /// A table's layout entry: "vecSize,members", and ",storage" for a table
    /// not stored as fp32 (so databases written before storage types read as fp32).
    private func readLayout(_ tag: String) throws(RocksDBError) -> (vecSize: Int, members: Int, storage: VectorStorage)? {
        guard let bytes = try readMetadata(Self.layoutKey(tag)) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        let fields = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let numbers = fields.prefix(2).compactMap { Int($0) }
        let storage = fields.count == 3 ? VectorStorage(rawValue: fields[2]) : .fp32
        guard (2...3).contains(fields.count), numbers.count == 2, numbers[0] > 0, numbers[1] > 0, let storage else {
            throw .corrupt(path: path, message: "the layout entry of table \(tag) is \"\(text)\", not \"vecSize,members\" or \"vecSize,members,storage\"")
        }
        return (numbers[0], numbers[1], storage)
    }

    private func readCount(_ tag: String) throws(RocksDBError) -> Int {
        guard let bytes = try readMetadata(Self.countKey(tag)) else { return 0 }
        guard bytes.count == 8 else {
            throw .corrupt(path: path, message: "the key count of table \(tag) is \(bytes.count) bytes, not 8")
        }
        return Int(Int64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }))
    }

    // MARK: EmbeddingStore

    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable {
        try createTable(tag, vecSize: vecSize, members: members, expectedKeys: expectedKeys, storage: .fp32)
    }

    /// Every `VectorStorage`: values are rows as `VectorCodec` stores them,
    /// and the storage is recorded with the table's layout.
    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                             storage: VectorStorage) throws(StoreError) -> any EmbeddingStoreTable {
        do {
            return try createOrOpen(tag, vecSize: vecSize, members: members, storage: storage)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .backend(kind: kind, table: tag, operation: nil, cause: error)
        }
    }

    private func createOrOpen(_ tag: String, vecSize: Int, members: Int, storage: VectorStorage) throws -> RocksDBTable {
        if let table = state.withLock({ $0[tag] }) {
            guard table.vecSize == vecSize && table.memberCount == members else {
                throw StoreError.layoutMismatch(table: tag, vecSize: table.vecSize, members: table.memberCount,
                                                requestedVecSize: vecSize, requestedMembers: members)
            }
            guard table.storage == storage else {
                throw StoreError.storageMismatch(kind: kind, table: tag, stored: table.storage, requested: storage)
            }
            return table
        }
        if readOnly { throw RocksDBError.readOnly(path: path, table: tag, operation: "create") }
        let family: RocksColumnFamily
        if let existing = families.withLock({ $0[tag] }) {
            family = existing
        } else {
            let (handle, message) = withErrorPointer { rocksdb_create_column_family(database.handle, familyOptions.handle, tag, $0) }
            if let message { throw Self.classify(path: path, operation: "create column family \(tag)", message: message) }
            guard let handle else { throw RocksDBError.operation(path: path, operation: "create column family \(tag)", message: "no handle returned") }
            family = RocksColumnFamily(handle: handle, database: database)
            families.withLock { $0[tag] = family }
        }
        let layout = "\(vecSize),\(members)" + (storage == .fp32 ? "" : ",\(storage.rawValue)")
        let batch = RocksWriteBatch()
        let key = Self.layoutKey(tag)
        rocksdb_writebatch_put_cf(batch.handle, defaultFamily.handle, key, key.utf8.count, layout, layout.utf8.count)
        try context.write(batch, operation: "record the layout of \(tag)")
        let table = RocksDBTable(context: context, family: family, tag: tag, vecSize: vecSize, storage: storage, members: members,
                                 count: 0)
        return state.withLock { tables in
            if let raced = tables[tag] { return raced }
            tables[tag] = table
            return table
        }
    }

    package func table(_ tag: String) -> (any EmbeddingStoreTable)? {
        state.withLock { $0[tag] }
    }

    /// Forgets the table, drops its column family and deletes its layout
    /// and count records.
    /// - Throws: `StoreError.backend` when RocksDB refuses (a read-only database among others).
    package func dropTable(_ tag: String) throws(StoreError) {
        guard state.withLock({ $0.removeValue(forKey: tag) }) != nil else { return }
        if readOnly {
            throw .backend(kind: kind, table: tag, operation: nil, cause: RocksDBError.readOnly(path: path, table: tag, operation: "drop"))
        }
        guard let family = families.withLock({ $0.removeValue(forKey: tag) }) else { return }
        let (_, message) = withErrorPointer { error -> Int? in
            rocksdb_drop_column_family(database.handle, family.handle, error)
            return nil
        }
        if let message {
            throw .backend(kind: kind, table: tag, operation: nil,
                           cause: Self.classify(path: path, operation: "drop column family \(tag)", message: message))
        }
        let batch = RocksWriteBatch()
        for key in [Self.layoutKey(tag), Self.countKey(tag)] {
            rocksdb_writebatch_delete_cf(batch.handle, defaultFamily.handle, key, key.utf8.count)
        }
        do throws(RocksDBError) {
            try context.write(batch, operation: "delete the records of \(tag)")
        } catch {
            throw .backend(kind: kind, table: tag, operation: nil, cause: error)
        }
    }

    package var tableTags: [String] {
        state.withLock { $0.keys.sorted() }
    }

    /// Keys RocksDB could not read (a corrupt block of a table file), each
    /// answered as a miss.
    package var faults: TierFaults? { context.faults }
}
#endif

#if RocksDB
/// What the tables of one store share: the open database and its options.
/// Tables hold this rather than the store, so that the database closes when
/// the store and its tables are gone.
final class RocksContext: Sendable {
    let database: RocksDatabase
    let defaultFamily: RocksColumnFamily
    let readOptions = RocksReadOptions()
    /// Synchronous: a write returns once the write-ahead log is on disk.
    let writeOptions = RocksWriteOptions(sync: true)
    let readOnly: Bool
    let maxBatchSize: Int
    /// Reads RocksDB failed (a corrupt block), which lookups answered as misses.
    let faults = TierFaults()
    var path: String { database.path }

    init(database: RocksDatabase, defaultFamily: RocksColumnFamily, readOnly: Bool, maxBatchSize: Int) {
        self.database = database
        self.defaultFamily = defaultFamily
        self.readOnly = readOnly
        self.maxBatchSize = maxBatchSize
    }

    /// Applies a write batch with the synchronous write options.
    func write(_ batch: RocksWriteBatch, operation: String) throws(RocksDBError) {
        let (_, message) = withErrorPointer { rocksdb_write(database.handle, writeOptions.handle, batch.handle, $0) }
        if let message { throw Self.classify(path: path, operation: operation, message: message) }
    }

    /// Sorts a RocksDB message into the error a user can act on.
    static func classify(path: String, operation: String, message: String) -> RocksDBError {
        if message.contains("/LOCK") || message.contains("lock hold by current process") {
            return .locked(path: path, message: message)
        }
        // A table file cut short reads past its end ("larger than file length",
        // "truncated block read"): as damaged as a garbled one.
        if message.hasPrefix("Corruption") || message.contains("CURRENT") || message.contains("MANIFEST")
            || message.contains("larger than file length") || message.contains("truncated") {
            return .corrupt(path: path, message: message)
        }
        if message.contains("No space left on device") {
            return .noSpace(path: path, operation: operation, message: message)
        }
        return .operation(path: path, operation: operation, message: message)
    }
}
#endif
