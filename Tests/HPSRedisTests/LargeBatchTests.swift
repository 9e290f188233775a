import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisLargeBatchTests {
    /// Replies of megabytes arrive in many reads; each read must not parse the
    /// reply again from its start (that once took past the 5 s timeout here).
    @Test("65536 keys of 64 floats go in and come back exactly, well within the command timeout")
    func largeBatch() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 9))
            let table = try store.createTable("hps_et.m.big", vecSize: 64, members: 1, expectedKeys: 65536)
            let rows = TestRows(count: 65536, vecSize: 64, seed: 16)
            try rows.insert(into: table)
            let result = lookup(table, keys: rows.keys)
            #expect(result.missed.isEmpty)
            #expect(bitwiseEqual(result.vectors, rows.vectors))
            #expect(result.seconds < 4, "\(result.seconds) s")
            #expect(store.errorCount == 0)
        }
    }
}
