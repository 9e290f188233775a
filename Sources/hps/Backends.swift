import HPS
import HPSKafka
import HPSMapped
import HPSRedis
import HPSRocksDB

/// The store backends and update sources this executable was built with,
/// given to every server it builds: the Redis Cluster and mapped tiers
/// always, RocksDB with the RocksDB trait, Kafka updates with the Kafka trait.
enum Backends {
    static let all: [StoreBackend] = {
        var backends: [StoreBackend] = [.redisCluster, .mapped]
        #if RocksDB
        backends.append(.rocksDB)
        #endif
        #if Kafka
        backends.append(.kafka)
        #endif
        return backends
    }()
}
