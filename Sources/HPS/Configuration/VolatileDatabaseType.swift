/// The in-memory tier between the GPU caches and the persistent database (`volatile_db.type`).
public enum VolatileDatabaseType: String, Sendable, Equatable, CaseIterable {
    /// A hash map in this process's memory.
    case hashMap = "hash_map"
    /// HugeCTR's name for the partitioned hash map; the same backend as `hashMap`.
    case parallelHashMap = "parallel_hash_map"
    /// A hash map in POSIX shared memory, shared by the processes of one machine.
    case multiProcessHashMap = "multi_process_hash_map"
    /// A Redis Cluster reached over the network.
    case redisCluster = "redis_cluster"
    /// No volatile tier.
    case disabled
}
