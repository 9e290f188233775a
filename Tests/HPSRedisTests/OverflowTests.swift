import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisOverflowTests {
    @Test("every partition stays within overflow_margin, under every policy", arguments: OverflowPolicy.allCases)
    func marginPerPartition(policy: OverflowPolicy) throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(
                cluster, partitions: 3, margin: 40, policy: policy, target: 0.5))
            let table = try store.redisTable("hps_et.m.overflow", vecSize: 2, members: 1)
            let rows = TestRows(count: 300, vecSize: 2, seed: 8)
            var held = 0
            for batch in 0..<6 {
                let keys = Array(rows.keys[(batch * 50)..<((batch + 1) * 50)])
                let vectors = Array(rows.vectors[(batch * 100)..<((batch + 1) * 100)])
                let counts = try keys.withUnsafeBufferPointer { k in
                    try vectors.withUnsafeBufferPointer { v in try table.insert(member: 0, keys: k, vectors: v, parallelism: 1) }
                }
                held += counts.inserted - counts.evicted
                for p in 0..<3 {
                    let n = try #require(table.fieldCount(partition: p))
                    #expect(n <= 40, "partition \(p) holds \(n) after batch \(batch)")
                    // The access hash is pruned with the values.
                    let node = try #require(store.cluster.node(forSlot: table.slots[p]))
                    #expect(try cluster.cli(node.port, ["hlen", table.timeKeys[p]]).trimmingCharacters(in: .whitespacesAndNewlines) == String(n))
                }
                #expect(table.count == held)
            }
            #expect(held < 300)
            // What is still held reads back exactly.
            let result = lookup(table, keys: rows.keys)
            #expect(result.missed.count == 300 - held)
            for i in 0..<300 where !result.missed.contains(i) {
                #expect(bitwiseEqual(result.vectors[(i * 2)..<(i * 2 + 2)], rows.row(i)))
            }
        }
    }

    /// Inserts 80 keys, looks up the first 20 `lookups` times, then inserts 40
    /// more into one partition of margin 100, which is pruned to 50.
    func overflowAfterUse(_ cluster: TestCluster, policy: OverflowPolicy, lookups: Int) throws
        -> (table: RedisClusterTable, old: TestRows, new: TestRows, evicted: Int) {
        let store = try RedisClusterStore(configuration: redisConfiguration(
            cluster, partitions: 1, margin: 100, policy: policy, target: 0.5))
        let table = try store.redisTable("hps_et.m.use", vecSize: 2, members: 1)
        let old = TestRows(count: 80, vecSize: 2, seed: 9)
        let new = TestRows(count: 40, vecSize: 2, seed: 10)
        try old.insert(into: table)
        Thread.sleep(forTimeInterval: 0.005)
        for _ in 0..<lookups { #expect(lookup(table, keys: Array(old.keys.prefix(20))).missed.isEmpty) }
        Thread.sleep(forTimeInterval: 0.005)
        let counts = try new.insert(into: table)
        #expect(counts.inserted == 40)
        return (table, old, new, counts.evicted)
    }

    @Test("evict_oldest drops the keys least recently inserted or looked up")
    func evictOldest() throws {
        try withCluster { cluster in
            let (table, old, new, evicted) = try overflowAfterUse(cluster, policy: .evictOldest, lookups: 1)
            #expect(evicted == 70)
            #expect(table.count == 50)
            #expect(lookup(table, keys: new.keys).missed.isEmpty)
            #expect(lookup(table, keys: Array(old.keys.suffix(60))).missed.count == 60)
            #expect(lookup(table, keys: Array(old.keys.prefix(20))).missed.count == 10)
        }
    }

    @Test("evict_least_used drops the keys looked up least often")
    func evictLeastUsed() throws {
        try withCluster { cluster in
            let (table, old, _, evicted) = try overflowAfterUse(cluster, policy: .evictLeastUsed, lookups: 3)
            #expect(evicted == 70)
            #expect(table.count == 50)
            #expect(lookup(table, keys: Array(old.keys.prefix(20))).missed.isEmpty)
        }
    }
}
