import Glibc
import HPS
import HPSBenchmarks
import HPSRedis
import HPSRocksDB

/// `hps bench --storage`'s bytes per key of the tiers that hold rows outside
/// the process's heap, for each `vector_storage` against fp32 in the same
/// run: a RocksDB database's files after the table is loaded, flushed and
/// compacted, and (with `--redis`) what a Redis Cluster's masters report as
/// `used_memory` for the table's hashes. Each table holds `keys` random keys
/// of random vectors in [-1, 1), the same for every storage.
enum StorageFootprint {
    /// One tier and storage.
    struct Row {
        var tier: String
        var storage: VectorStorage
        var dim: Int
        var bytesPerKey: Double
    }

    /// The rows of RocksDB (when built) and of the cluster at `redis` (when given).
    static func run(keys: Int, dims: [Int], redis: String?) throws -> [Row] {
        var rows: [Row] = []
        for dim in dims {
            let (tableKeys, vectors) = table(keys: keys, dim: dim)
            if isRocksDBBuilt {
                for storage in VectorStorage.allCases {
                    rows.append(Row(tier: "rocks_db", storage: storage, dim: dim,
                                    bytesPerKey: try rocksDBBytes(keys: tableKeys, vectors: vectors, dim: dim, storage: storage)
                                        / Double(keys)))
                }
            }
            if let redis {
                for storage in VectorStorage.allCases {
                    rows.append(Row(tier: "redis_cluster", storage: storage, dim: dim,
                                    bytesPerKey: try redisBytes(address: redis, keys: tableKeys, vectors: vectors, dim: dim,
                                                                storage: storage) / Double(keys)))
                }
            }
        }
        return rows
    }

    private static func table(keys: Int, dim: Int) -> (keys: [Int64], vectors: [Float]) {
        var random = SplitMix64(seed: 31)
        let tableKeys = (0..<keys).map { _ in Int64(bitPattern: random.next() >> 1) }
        let vectors = (0..<(keys * dim)).map { _ in Float(random.next() >> 40) / Float(1 << 23) - 1 }
        return (tableKeys, vectors)
    }

    /// Inserts the table into `table` in chunks, as a load does.
    private static func insert(_ keys: [Int64], _ vectors: [Float], dim: Int, into table: any EmbeddingStoreTable) throws {
        let chunk = 65_536
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in
                var start = 0
                while start < k.count {
                    let n = min(chunk, k.count - start)
                    _ = try table.insert(member: 0, keys: UnsafeBufferPointer(rebasing: k[start..<(start + n)]),
                                         vectors: UnsafeBufferPointer(rebasing: v[(start * dim)..<((start + n) * dim)]),
                                         parallelism: 1)
                    start += n
                }
            }
        }
    }

    /// The bytes of the table files (`*.sst`) of a fresh database holding
    /// the table, flushed and compacted, less those of one holding an empty table.
    private static func rocksDBBytes(keys: [Int64], vectors: [Float], dim: Int, storage: VectorStorage) throws -> Double {
        #if RocksDB
        func folderBytes(loading: Bool) throws -> Double {
            var template = Array("/tmp/hps-storage-footprint-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CheckFailure(reason: "cannot make a temporary folder in /tmp") }
            let path = String(cString: made)
            defer { _ = try? runProgram("rm", ["-rf", path]) }
            do {
                let store = try RocksDBStore(path: path + "/db")
                let table = try store.createTable("hps_et.bench.storage", vecSize: dim, members: 1, expectedKeys: keys.count,
                                                  storage: storage)
                if loading { try insert(keys, vectors, dim: dim, into: table) }
                try (table as? RocksDBTable)?.compact()
            }
            // The table files alone: the write-ahead log and RocksDB's own files are not the table's.
            let listing = try runProgram("find", [path + "/db", "-name", "*.sst", "-printf", "%s\\n"])
            return listing.split(whereSeparator: \.isNewline).reduce(0) { $0 + (Double($1) ?? 0) }
        }
        return try folderBytes(loading: true) - folderBytes(loading: false)
        #else
        throw CheckFailure(reason: "this build has no RocksDB tier; build with --traits RocksDB")
        #endif
    }

    /// The growth of the masters' `used_memory` when the table is loaded
    /// (the table dropped after).
    private static func redisBytes(address: String, keys: [Int64], vectors: [Float], dim: Int,
                                   storage: VectorStorage) throws -> Double {
        var configuration = VolatileDatabaseConfiguration()
        configuration.type = .redisCluster
        configuration.address = address
        let store = try RedisClusterStore(configuration: configuration)
        let tag = "hps_et.bench.storage_\(storage.rawValue)_\(dim)"
        try store.dropTable(tag)
        try settle(store.cluster)
        let before = try usedMemory(store.cluster)
        let table = try store.createTable(tag, vecSize: dim, members: 1, expectedKeys: keys.count, storage: storage)
        try insert(keys, vectors, dim: dim, into: table)
        let after = try usedMemory(store.cluster)
        try store.dropTable(tag)
        try settle(store.cluster)
        return Double(after - before)
    }

    /// The sum over the masters of `INFO memory`'s `used_memory` (read with `redis-cli`).
    private static func usedMemory(_ cluster: RedisCluster) throws -> Int {
        try infoMemory(cluster, field: "used_memory")
    }

    /// Waits (10 s at most) until no master still frees what `UNLINK` left to its background thread.
    private static func settle(_ cluster: RedisCluster) throws {
        for _ in 0..<100 {
            if try infoMemory(cluster, field: "lazyfree_pending_objects") == 0 { return }
            usleep(100_000)
        }
        throw CheckFailure(reason: "the Redis Cluster still had objects to free 10 s after the table was dropped")
    }

    /// The sum over the masters of one `INFO memory` field.
    private static func infoMemory(_ cluster: RedisCluster, field: String) throws -> Int {
        var total = 0
        for node in cluster.masters {
            let text = try runProgram("redis-cli", ["-h", node.host, "-p", String(node.port), "INFO", "memory"])
            guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix(field + ":") }),
                  let value = Int(line.dropFirst(field.count + 1).trimmingCharacters(in: "\r ")) else {
                throw CheckFailure(reason: "INFO memory of Redis node \(node) has no \(field) line")
            }
            total += value
        }
        return total
    }
}
