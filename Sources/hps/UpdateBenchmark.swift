import HPSBenchmarks
import Glibc
import HPS
import HPSKafka

/// `hps bench --updates`: online updates applied into each store as a Kafka
/// consumer applies them (messages decoded, then written through
/// `HierarchicalParameterServer.update` on the consumer's one thread),
/// against writing the same rows with one update call (the plain approach)
/// and memcpy of the same bytes, in alternating rounds: the in-process hash
/// map on one core, a Redis Cluster (with `--redis`) and RocksDB.
enum UpdateBenchmark {
    /// One store measured: its name, its configuration's JSON members, and its sizes.
    struct Store {
        var name: String
        var json: String
        var tableKeys: Int
        var updates: Int
    }

    /// The stores of a run: the hash map (`tableKeys` keys, `updates`
    /// updates), then Redis Cluster at `redis` when given and RocksDB in
    /// `folder`, with a fifth of both (their writes leave the process).
    static func stores(tableKeys: Int, updates: Int, redis: String?, folder: String) -> [Store] {
        var stores = [Store(name: "hash map", json: #""volatile_db": {"type": "hash_map", "num_partitions": 1}"#,
                            tableKeys: tableKeys, updates: updates)]
        if let redis {
            stores.append(Store(name: "Redis Cluster",
                                json: #""volatile_db": {"type": "redis_cluster", "address": "\#(redis)", "num_partitions": 16}"#,
                                tableKeys: tableKeys / 5, updates: updates / 5))
        }
        stores.append(Store(name: "RocksDB",
                            json: #""volatile_db": {"type": "disabled"}, "persistent_db": {"type": "rocks_db", "path": "\#(folder)/rocksdb"}"#,
                            tableKeys: tableKeys / 5, updates: updates / 5))
        return stores
    }

    /// Prints one row per measurement.
    static func run(tableKeys: Int, updates: Int, keysPerMessage: Int, runs: Int, markdown: Bool, redis: String? = nil) throws {
        let directory = try TemporaryDirectory(prefix: "hps-bench-updates")
        defer { directory.remove() }
        if markdown {
            print("| measurement (vec 128; the applier on one thread) | median | × memcpy | key updates/s |")
            print("| --- | --- | --- | --- |")
        }
        for store in stores(tableKeys: tableKeys, updates: updates, redis: redis, folder: directory.path) {
            try run(store, keysPerMessage: keysPerMessage, runs: runs, markdown: markdown, folder: directory.path)
        }
    }

    static func run(_ store: Store, keysPerMessage: Int, runs: Int, markdown: Bool, folder: String) throws {
        let vecSize = 128, tableKeys = store.tableKeys, updates = store.updates
        let directory = try TemporaryDirectory(prefix: "hps-bench-updates-table")
        defer { directory.remove() }
        let model = try OneTableBenchmarkModel(folder: directory.path, keys: tableKeys, vecSize: vecSize, stride: 7, offset: 3,
                                               seed: 77, stores: store.json, keysPerSample: 1)
        let keys = model.keys
        var random = SplitMix64(seed: 78)
        let server = try model.server()
        let applier = UpdateApplier(server: server)
        // Updates of keys the table holds, in random order, as messages of keysPerMessage pairs.
        let updateKeys = (0..<updates).map { _ in keys[Int(random.next() % UInt64(tableKeys))] }
        let updateRows = (0..<(updates * vecSize)).map { _ in random.nextFloat(-1, 1) }
        var messages: [ReceivedUpdate] = []
        for start in stride(from: 0, to: updates, by: keysPerMessage) {
            let end = min(start + keysPerMessage, updates)
            let message = UpdateMessage(keys: Array(updateKeys[start..<end]),
                                        vectors: Array(updateRows[(start * vecSize)..<(end * vecSize)]), vecSize: vecSize)
            messages.append(ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: Int64(messages.count), payload: message.encoded()))
        }
        let bytes = updates * vecSize * 4
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        memset(source, 1, bytes)
        memset(target, 2, bytes)
        var failure: (any Error)?
        let medians = LookupBenchmark.interleavedMedians(runs: runs, [
            { memcpy(target, source, bytes) },
            {
                do { try applier.apply(messages) } catch { failure = error }
            },
            {
                updateKeys.withUnsafeBufferPointer { k in
                    updateRows.withUnsafeBufferPointer { v in
                        do { _ = try server.update(model: "m", table: 0, keys: k, vectors: v) } catch { failure = error }
                    }
                }
            },
        ])
        if let failure { throw failure }
        let names = [
            "\(store.name): memcpy of the updates' \(bytes) bytes",
            "\(store.name), table of \(tableKeys) keys: \(updates) updates as \(messages.count) Kafka messages of \(keysPerMessage) keys, decoded and applied",
            "\(store.name): the same rows written with one update call",
        ]
        for (name, seconds) in zip(names, medians) {
            let rate = name.contains(": memcpy") ? "-" : "\(format(Double(updates) / seconds / 1e6, 2)) M"
            if markdown {
                print("| \(name) | \(format(seconds * 1e3, 2)) ms | \(format(seconds / medians[0], 2)) | \(rate) |")
            } else {
                print("  \(name): \(format(seconds * 1e3, 2)) ms, \(format(seconds / medians[0], 2))× memcpy, \(rate) key updates/s")
            }
        }
    }
}
