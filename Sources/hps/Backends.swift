import HPSMapped
import HPSRocksDB

/// Registers the store backends this executable was built with (the mapped
/// tier always; RocksDB with the RocksDB trait; its `registerBackends()` is
/// empty without it), before any command builds a server.
enum Backends {
    static func registerAll() {
        HPSMapped.registerBackends()
        HPSRocksDB.registerBackends()
    }
}
