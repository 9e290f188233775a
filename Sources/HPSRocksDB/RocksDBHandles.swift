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
