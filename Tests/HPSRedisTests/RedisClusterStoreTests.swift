import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisClusterStoreTests {
    @Test("a quantized table stores rows as its vector_storage says and reads back what the hash map tier does")
    func quantizedStorage() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster))
            let rows = TestRows(count: 700, vecSize: 12, seed: 5)
            for storage in [VectorStorage.int8, .bf16, .fp8] {
                let reference = try HashMapStore(partitions: 1).createTable("r", vecSize: 12, members: 1, expectedKeys: 700,
                                                                              storage: storage)
                _ = try rows.insert(into: reference)
                let table = try store.createTable("hps_et.m.q\(storage.rawValue)", vecSize: 12, members: 1, expectedKeys: 700,
                                                  storage: storage)
                #expect(try rows.insert(into: table) == InsertCounts(inserted: 700))
                let keys = rows.keys + [-3]
                let want = lookup(reference, keys: keys, defaults: [2])
                let got = lookup(table, keys: keys, defaults: [2], runSize: 61)
                #expect(bitwiseEqual(got.vectors, want.vectors), "\(storage)")
                #expect(got.missed == [700])
                #expect(throws: StoreError.self) {
                    try store.createTable("hps_et.m.q\(storage.rawValue)", vecSize: 12, members: 1, expectedKeys: 0, storage: .fp32)
                }
            }
        }
    }

    @Test("vectors read back exactly as inserted; absent keys get the default and are listed ascending")
    func roundTrip() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster))
            #expect(store.kind == "redis_cluster")
            let table = try store.createTable("hps_et.m.t0", vecSize: 8, members: 1, expectedKeys: 2000)
            let rows = TestRows(count: 2000, vecSize: 8, seed: 1)
            let counts = try rows.insert(into: table)
            #expect(counts == InsertCounts(inserted: 2000))
            #expect(table.count == 2000)
            // Present and absent keys interleaved, spread over several runs.
            let absent = TestRows(count: 300, vecSize: 8, seed: 2).keys.filter { !rows.keys.contains($0) }
            var keys: [Int64] = []
            var expected: [Int64: [Float]] = [:]
            for (i, key) in rows.keys.enumerated() { expected[key] = rows.row(i) }
            for (i, key) in rows.keys.enumerated() {
                keys.append(key)
                if i < absent.count { keys.append(absent[i]) }
            }
            let result = lookup(table, keys: keys, defaults: [-1.5], runSize: 97)
            var misses: [Int] = []
            for (i, key) in keys.enumerated() {
                let got = result.vectors[(i * 8)..<((i + 1) * 8)]
                if let vector = expected[key] {
                    #expect(bitwiseEqual(got, vector), "key \(key)")
                } else {
                    misses.append(i)
                    #expect(got.allSatisfy { $0 == -1.5 })
                }
            }
            #expect(result.missed == misses)
            // Replacing counts as replaced; erasing removes.
            #expect(try rows.insert(into: table) == InsertCounts(replaced: 2000))
            let erased = rows.keys.prefix(500).withUnsafeBufferPointer { table.erase(member: 0, keys: $0) }
            #expect(erased == 500)
            #expect(table.count == 1500)
            #expect(lookup(table, keys: Array(rows.keys.prefix(600))).missed == Array(0..<500))
        }
    }

    @Test("dropping a table unlinks its hashes: a new table of the same tag starts empty; other tables keep their rows")
    func dropTable() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 3))
            let rows = TestRows(count: 300, vecSize: 4, seed: 7)
            let dropped = try store.createTable("hps_et.m.t0.v1", vecSize: 4, members: 1, expectedKeys: 300)
            let kept = try store.createTable("hps_et.m.t0", vecSize: 4, members: 1, expectedKeys: 300)
            _ = try rows.insert(into: dropped)
            _ = try rows.insert(into: kept)
            try store.dropTable("hps_et.m.t0.v1")
            #expect(store.tableTags == ["hps_et.m.t0"])
            #expect(store.table("hps_et.m.t0.v1") == nil)
            try store.dropTable("hps_et.m.none")  // a tag the store does not hold: no error
            let again = try store.createTable("hps_et.m.t0.v1", vecSize: 4, members: 1, expectedKeys: 300)
            #expect(again.count == 0)
            #expect(lookup(again, keys: rows.keys).missed.count == rows.keys.count)
            #expect(kept.count == 300)
            #expect(lookup(kept, keys: rows.keys).missed.isEmpty)
        }
    }

    @Test("a bad address and TLS are refused naming the setting, not as a backend missing from the build")
    func configurationRefusals() {
        var configuration = VolatileDatabaseConfiguration()
        configuration.type = .redisCluster
        configuration.address = "not an address"
        #expect(throws: ConfigurationError.invalidValue(path: "volatile_db.address", expected: "a comma-separated list of host:port",
                                                        found: "\"not an address\"")) {
            try RedisClusterStore(configuration: configuration)
        }
        configuration.address = "127.0.0.1:1"
        configuration.enableTLS = true
        do {
            _ = try RedisClusterStore(configuration: configuration)
            Issue.record("TLS was accepted")
        } catch {
            #expect(String(describing: error).contains("volatile_db.enable_tls"))
            #expect(!String(describing: error).contains("not available in this build"))
        }
    }

    @Test("the layout is HugeCTR's: one value and one access hash per partition, fields of 8 key bytes")
    func layout() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 3))
            let table = try store.redisTable("hps_et.m.t1", vecSize: 2, members: 1)
            #expect(table.valueKeys == ["hps_et{hps_et.m.t1/p0}v", "hps_et{hps_et.m.t1/p1}v", "hps_et{hps_et.m.t1/p2}v"])
            #expect(table.timeKeys[2] == "hps_et{hps_et.m.t1/p2}t")
            let keys: [Int64] = Array(1...60)
            let vectors: [Float] = (0..<120).map(Float.init)
            _ = try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in try table.insert(member: 0, keys: k, vectors: v, parallelism: 1) }
            }
            var total = 0
            for p in 0..<3 {
                let n = try #require(table.fieldCount(partition: p))
                #expect(n > 0, "partition \(p) holds keys")
                total += n
                let node = try #require(store.cluster.node(forSlot: HashSlot.slot(table.valueKeys[p])))
                #expect(try cluster.cli(node.port, ["hlen", table.timeKeys[p]]).contains(String(n)))
            }
            #expect(total == 60)
            // Key 1 is stored under its 8 little-endian bytes, the value as 2 raw float32.
            let p = table.partition(1, member: 0)
            let node = try #require(store.cluster.node(forSlot: table.slots[p]))
            let field = try cluster.cli(node.port, ["--no-raw", "hkeys", table.valueKeys[p]])
            #expect(field.contains("\"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\""))
        }
    }

    @Test("fused members are kept apart: one key, two vectors")
    func fusedMembers() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster))
            let table = try store.createTable("hps_et.m.fused_embedding0", vecSize: 4, members: 2, expectedKeys: 400)
            let a = TestRows(count: 200, vecSize: 4, seed: 3)
            var b = TestRows(count: 200, vecSize: 4, seed: 4)
            b.keys = Array(a.keys.prefix(100)) + Array(b.keys.prefix(100))  // half the keys shared
            try a.insert(into: table, member: 0)
            try b.insert(into: table, member: 1)
            #expect(table.count == 400)
            let ra = lookup(table, member: 0, keys: a.keys)
            let rb = lookup(table, member: 1, keys: b.keys)
            #expect(ra.missed.isEmpty && rb.missed.isEmpty)
            #expect(bitwiseEqual(ra.vectors, a.vectors))
            #expect(bitwiseEqual(rb.vectors, b.vectors))
            // Keys only in member 1 miss in member 0, with member 0's default.
            let onlyB = Array(b.keys.suffix(100))
            let miss = lookup(table, member: 0, keys: onlyB, defaults: [7, 9])
            #expect(miss.missed == Array(0..<100))
            #expect(miss.vectors.allSatisfy { $0 == 7 })
            // Erasing from one member leaves the other.
            #expect(a.keys.prefix(100).withUnsafeBufferPointer { table.erase(member: 0, keys: $0) } == 100)
            #expect(lookup(table, member: 1, keys: Array(b.keys.prefix(100))).missed.isEmpty)
        }
    }

    @Test("batches larger than max_batch_size go in chunks")
    func chunks() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 2, maxBatchSize: 7))
            let table = try store.createTable("hps_et.m.t2", vecSize: 3, members: 1, expectedKeys: 500)
            let rows = TestRows(count: 500, vecSize: 3, seed: 5)
            #expect(try rows.insert(into: table).inserted == 500)
            #expect(table.count == 500)
            let result = lookup(table, keys: rows.keys)
            #expect(result.missed.isEmpty)
            #expect(bitwiseEqual(result.vectors, rows.vectors))
            #expect(rows.keys.withUnsafeBufferPointer { table.erase(member: 0, keys: $0) } == 500)
            #expect(table.count == 0)
        }
    }

    @Test("a cluster opened through one node's address finds all nodes")
    func oneSeed() throws {
        try withCluster { cluster in
            var configuration = redisConfiguration(cluster)
            configuration.address = "127.0.0.1:\(cluster.ports[1])"
            let store = try RedisClusterStore(configuration: configuration)
            #expect(Set(store.cluster.masters.map(\.port)) == Set(cluster.ports))
            let table = try store.createTable("hps_et.m.t3", vecSize: 2, members: 1, expectedKeys: 100)
            let rows = TestRows(count: 100, vecSize: 2, seed: 6)
            try rows.insert(into: table)
            #expect(bitwiseEqual(lookup(table, keys: rows.keys).vectors, rows.vectors))
        }
    }

    @Test("ASK during a slot migration and MOVED after it are followed; the slot map is refreshed")
    func redirections() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 1))
            let table = try store.redisTable("hps_et.m.t4", vecSize: 4, members: 1)
            let rows = TestRows(count: 300, vecSize: 4, seed: 7)
            try rows.insert(into: table)
            let slot = table.slots[0]
            let source = try #require(store.cluster.node(forSlot: slot))
            let target = try #require(cluster.ports.first { $0 != source.port })
            let sourceID = try cluster.nodeID(source.port), targetID = try cluster.nodeID(target)
            // Migrate the slot's two keys by hand, as redis-cli --cluster reshard does.
            try cluster.cli(target, ["cluster", "setslot", String(slot), "importing", sourceID])
            try cluster.cli(source.port, ["cluster", "setslot", String(slot), "migrating", targetID])
            let moved = try cluster.cli(source.port, ["migrate", "127.0.0.1", String(target), "", "0", "5000",
                                                      "keys", table.valueKeys[0], table.timeKeys[0]])
            #expect(moved.contains("OK"))
            // Mid-migration: the source answers ASK, the store follows it.
            let asked = lookup(table, keys: rows.keys)
            #expect(asked.missed.isEmpty)
            #expect(bitwiseEqual(asked.vectors, rows.vectors))
            #expect(store.cluster.node(forSlot: slot) == source)
            #expect(store.cluster.redirectionCount == 1, "one ASK for the one HMGET")
            for port in cluster.ports {
                try cluster.cli(port, ["cluster", "setslot", String(slot), "node", targetID])
            }
            // After: the source answers MOVED, the store follows it and updates its map.
            let after = lookup(table, keys: rows.keys)
            #expect(after.missed.isEmpty)
            #expect(bitwiseEqual(after.vectors, rows.vectors))
            #expect(store.cluster.node(forSlot: slot)?.port == target)
            #expect(store.cluster.redirectionCount == 2, "then one MOVED")
            #expect(bitwiseEqual(lookup(table, keys: rows.keys).vectors, rows.vectors))
            #expect(store.cluster.redirectionCount == 2, "and none once the map is refreshed")
            #expect(store.errorCount == 0)
        }
    }

    @Test("with no node reachable at start, opening fails naming the addresses tried")
    func clusterDown() throws {
        var configuration = VolatileDatabaseConfiguration()
        configuration.type = .redisCluster
        configuration.address = "127.0.0.1:7197,127.0.0.1:7198"
        do {
            _ = try RedisClusterStore(configuration: configuration)
            Issue.record("opening an unreachable cluster succeeded")
        } catch {
            let text = "\(error)"
            #expect(text.contains("127.0.0.1:7197") && text.contains("127.0.0.1:7198"), "\(text)")
            #expect(text.contains("volatile_db.address"))
        }
    }
}
