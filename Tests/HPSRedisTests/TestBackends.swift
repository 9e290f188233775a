import HPS
import HPSRedis
import HPSRocksDB

/// The tiers of the tests whose configurations put Redis Cluster over
/// RocksDB: RocksDB is there with the RocksDB trait (CI enables every trait).
let redisAndRocksDB: [StoreBackend] = {
    var backends: [StoreBackend] = [.redisCluster]
    #if RocksDB
    backends.append(.rocksDB)
    #endif
    return backends
}()
