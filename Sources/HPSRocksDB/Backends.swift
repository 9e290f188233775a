import HPS

/// Registers the `rocks_db` persistent tier with `StoreBackends`, so that a
/// configuration naming it can be served. Without the RocksDB package trait
/// this registers nothing, and the server reports the type as not built.
public func registerBackends() {
    #if RocksDB
    StoreBackends.register(persistent: .rocksDB) { try RocksDBStore(configuration: $0) }
    #endif
}

/// Whether this build has the RocksDB tier (the RocksDB package trait).
public var isRocksDBBuilt: Bool {
    #if RocksDB
    true
    #else
    false
    #endif
}
