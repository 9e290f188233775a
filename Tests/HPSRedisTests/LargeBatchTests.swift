import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisLargeBatchTests {
    /// Replies of megabytes arrive in many reads; each read must not parse the
    /// reply again from its start (that once took past the 5 s timeout here).
    /// Checked as a ratio to a batch of an eighth of the keys in the same run
    /// (linear is 8×, parsing from the start each read far more), so that a
    /// loaded machine does not fail it.
    @Test("65536 keys of 64 floats go in and come back exactly, in time linear in the batch")
    func largeBatch() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 9))
            let table = try store.createTable("hps_et.m.big", vecSize: 64, members: 1, expectedKeys: 65536)
            let rows = TestRows(count: 65536, vecSize: 64, seed: 16)
            try rows.insert(into: table)
            let small = lookup(table, keys: Array(rows.keys[0..<8192]))
            let result = lookup(table, keys: rows.keys)
            #expect(small.missed.isEmpty && result.missed.isEmpty)
            #expect(bitwiseEqual(result.vectors, rows.vectors))
            #expect(result.seconds < max(small.seconds, 0.01) * 32, "8192 keys took \(small.seconds) s, 65536 took \(result.seconds) s")
            #expect(store.errorCount == 0)
        }
    }
}
