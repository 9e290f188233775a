import HPSKafka
import HPSMapped
import HPSRedis
import HPSRocksDB

/// Registers the store backends this executable was built with (the Redis
/// Cluster and mapped tiers always; RocksDB with the RocksDB trait and Kafka
/// updates with the Kafka trait: their `registerBackends()` is empty without
/// it), before any command builds a server.
enum Backends {
    static func registerAll() {
        HPSMapped.registerBackends()
        HPSRedis.registerBackends()
        HPSRocksDB.registerBackends()
        HPSKafka.registerBackends()
    }
}
