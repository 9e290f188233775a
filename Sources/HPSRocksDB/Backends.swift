public import HPS

extension StoreBackend {
    /// The `rocks_db` persistent tier, given to a `HierarchicalParameterServer`
    /// whose configuration names it. Only in a build with the RocksDB package trait.
    #if RocksDB
    public static let rocksDB = StoreBackend(persistent: .rocksDB) { try RocksDBStore(configuration: $0) }
    #endif
}

/// Whether this build has the RocksDB tier (the RocksDB package trait).
package var isRocksDBBuilt: Bool {
    #if RocksDB
    true
    #else
    false
    #endif
}
