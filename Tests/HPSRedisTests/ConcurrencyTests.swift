import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisConcurrencyTests {
    @Test("lookups, inserts and erases from several threads at once stay exact")
    func concurrentCalls() throws {
        try withCluster { cluster in
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 6))
            let table = try store.createTable("hps_et.m.concurrent", vecSize: 4, members: 2, expectedKeys: 2000)
            let stable = TestRows(count: 1000, vecSize: 4, seed: 21)
            try stable.insert(into: table, member: 0)
            let churn = TestRows(count: 400, vecSize: 4, seed: 22)
            let failures = DispatchQueue(label: "failures")
            nonisolated(unsafe) var bad: [String] = []
            DispatchQueue.concurrentPerform(iterations: 6) { worker in
                for round in 0..<10 {
                    if worker == 0 {
                        // Member 1 changes under the readers of member 0.
                        do { try churn.insert(into: table, member: 1) } catch {
                            failures.sync { bad.append("insert: \(error)") }
                        }
                        _ = churn.keys.prefix(200).withUnsafeBufferPointer { table.erase(member: 1, keys: $0) }
                    } else {
                        let result = lookup(table, member: 0, keys: stable.keys, runSize: 50 + worker * 7)
                        if !result.missed.isEmpty || !bitwiseEqual(result.vectors, stable.vectors) {
                            failures.sync { bad.append("worker \(worker) round \(round): \(result.missed.count) misses") }
                        }
                    }
                }
            }
            #expect(bad.isEmpty, "\(bad.prefix(3))")
            #expect(store.errorCount == 0)
            #expect(table.count == 1000 + 200)
        }
    }
}
