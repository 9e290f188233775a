import Foundation
import HPS
import NIOCore
import Testing

@testable import HPSRedis

struct RedisFailureTests {
    @Test("a master killed during lookups: its keys miss with defaults, the rest answer, errors are counted, and it recovers")
    func masterKilled() throws {
        try withCluster { cluster in
            var options = RedisCluster.Options()
            options.connectTimeout = .milliseconds(500)
            options.commandTimeout = .milliseconds(1000)
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 6), options: options)
            let table = try store.redisTable("hps_et.m.failure", vecSize: 4, members: 1)
            let rows = TestRows(count: 1200, vecSize: 4, seed: 11)
            try rows.insert(into: table)
            let victim = try #require(store.cluster.node(forSlot: table.slots[0])).port
            let onVictim = rows.keys.indices.filter { i in
                store.cluster.node(forSlot: table.slots[table.partition(rows.keys[i], member: 0)])?.port == victim
            }
            try #require(!onVictim.isEmpty && onVictim.count < rows.keys.count, "keys on the victim and elsewhere")
            let victimSet = Set(onVictim)

            var slowest = 0.0
            for iteration in 0..<15 {
                if iteration == 3 { try cluster.kill(victim) }
                let result = lookup(table, keys: rows.keys, defaults: [-2])
                slowest = max(slowest, result.seconds)
                if iteration < 3 {
                    #expect(result.missed.isEmpty)
                } else if iteration > 3 {
                    #expect(result.missed == onVictim, "iteration \(iteration)")
                }
                for i in 0..<rows.keys.count {
                    let got = result.vectors[(i * 4)..<(i * 4 + 4)]
                    if iteration > 3 && victimSet.contains(i) {
                        #expect(got.allSatisfy { $0 == -2 })
                    } else if !victimSet.contains(i) {
                        #expect(bitwiseEqual(got, rows.row(i)), "key \(i) of a live node, iteration \(iteration)")
                    }
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(slowest < 2, "the slowest lookup took \(slowest) s")
            #expect(store.errorCount > 0)

            // The node returns (same port, same nodes.conf). It saved nothing, so its
            // keys are written again, as a refill would; then every key answers.
            try cluster.restart(victim)
            try cluster.waitUntilHealthy()
            let deadline = Date().addingTimeInterval(10)
            var stored = false
            while !stored && Date() < deadline {
                stored = (try? rows.insert(into: table)) != nil
                if !stored { Thread.sleep(forTimeInterval: 0.1) }
            }
            #expect(stored)
            let errors = store.errorCount
            let result = lookup(table, keys: rows.keys)
            #expect(result.missed.isEmpty)
            #expect(bitwiseEqual(result.vectors, rows.vectors))
            #expect(store.errorCount == errors)
        }
    }

    @Test("a hung master (SIGSTOP) costs a lookup at most the command timeout; its keys answer again after SIGCONT")
    func masterHung() throws {
        try withCluster { cluster in
            var options = RedisCluster.Options()
            options.connectTimeout = .milliseconds(300)
            options.commandTimeout = .milliseconds(500)
            let store = try RedisClusterStore(configuration: redisConfiguration(cluster, partitions: 6), options: options)
            let table = try store.redisTable("hps_et.m.hung", vecSize: 4, members: 1)
            let rows = TestRows(count: 600, vecSize: 4, seed: 15)
            try rows.insert(into: table)
            let victim = try #require(store.cluster.node(forSlot: table.slots[0])).port
            let onVictim = rows.keys.indices.filter { i in
                store.cluster.node(forSlot: table.slots[table.partition(rows.keys[i], member: 0)])?.port == victim
            }
            let pid = try String(contentsOfFile: cluster.directory + "/redis-\(victim).pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(TestCluster.run("/bin/kill", ["-STOP", pid]).status == 0)
            var slowest = 0.0
            for _ in 0..<6 {
                let result = lookup(table, keys: rows.keys, defaults: [-3])
                slowest = max(slowest, result.seconds)
                #expect(result.missed == onVictim)
            }
            #expect(TestCluster.run("/bin/kill", ["-CONT", pid]).status == 0)
            #expect(slowest < 2, "the slowest lookup took \(slowest) s")
            #expect(store.errorCount > 0)
            // The node kept its data: once it runs again, its keys answer.
            let deadline = Date().addingTimeInterval(10)
            var result = lookup(table, keys: rows.keys)
            while !result.missed.isEmpty && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.1)
                result = lookup(table, keys: rows.keys)
            }
            #expect(result.missed.isEmpty)
            #expect(bitwiseEqual(result.vectors, rows.vectors))
        }
    }
}
