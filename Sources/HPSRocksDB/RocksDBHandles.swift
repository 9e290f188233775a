#if RocksDB
import CRocksDB

// Each C handle is owned by one final class whose deinit destroys it. A
// column family keeps its database alive, so families are destroyed before
// the database is closed.

/// An open database (`rocksdb_t`); closed when the last reference goes.
final class RocksDatabase: @unchecked Sendable {
    let handle: OpaquePointer
    let path: String
    init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
    }
    deinit { rocksdb_close(handle) }
}

/// A column family of an open database.
final class RocksColumnFamily: @unchecked Sendable {
    let handle: OpaquePointer
    let database: RocksDatabase
    init(handle: OpaquePointer, database: RocksDatabase) {
        self.handle = handle
        self.database = database
    }
    deinit { rocksdb_column_family_handle_destroy(handle) }
}

/// Database or column-family options.
final class RocksOptions: @unchecked Sendable {
    let handle: OpaquePointer
    init() { handle = rocksdb_options_create() }
    deinit { rocksdb_options_destroy(handle) }
}

/// Block-based table options for point lookups of incompressible vectors:
/// a full bloom filter of 10 bits per key (a missing key costs no block read,
/// nor does checking which keys an insert replaces), and an LRU block cache.
final class RocksTableOptions: @unchecked Sendable {
    let handle: OpaquePointer
    private let cache: OpaquePointer

    init(blockCacheBytes: Int) {
        handle = rocksdb_block_based_options_create()
        cache = rocksdb_cache_create_lru(blockCacheBytes)
        // The options take the filter policy over; the cache they share.
        rocksdb_block_based_options_set_filter_policy(handle, rocksdb_filterpolicy_create_bloom_full(10))
        rocksdb_block_based_options_set_block_cache(handle, cache)
    }

    /// Makes `options` use these table options and no compression (random
    /// floats do not compress; decompressing would cost every read).
    func apply(to options: RocksOptions) {
        rocksdb_options_set_block_based_table_factory(options.handle, handle)
        rocksdb_options_set_compression(options.handle, Int32(rocksdb_no_compression))
    }

    deinit {
        rocksdb_block_based_options_destroy(handle)
        rocksdb_cache_destroy(cache)
    }
}

/// Read options (defaults: checksums verified, no snapshot).
final class RocksReadOptions: @unchecked Sendable {
    let handle: OpaquePointer
    init() { handle = rocksdb_readoptions_create() }
    deinit { rocksdb_readoptions_destroy(handle) }
}

/// Write options.
final class RocksWriteOptions: @unchecked Sendable {
    let handle: OpaquePointer
    init(sync: Bool) {
        handle = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(handle, sync ? 1 : 0)
    }
    deinit { rocksdb_writeoptions_destroy(handle) }
}

/// A write batch, applied atomically by `rocksdb_write`.
final class RocksWriteBatch {
    let handle: OpaquePointer
    init() { handle = rocksdb_writebatch_create() }
    deinit { rocksdb_writebatch_destroy(handle) }
}

/// Runs a C call that reports failure through `char** errptr`.
/// - Returns: the call's result and RocksDB's message, if it failed.
func withErrorPointer<T>(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T) -> (T, String?) {
    var error: UnsafeMutablePointer<CChar>? = nil
    let result = body(&error)
    guard let error else { return (result, nil) }
    let message = String(cString: error)
    rocksdb_free(error)
    return (result, message)
}
#endif
