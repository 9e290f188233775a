import Foundation
import HPS
import Testing

@testable import HPSRedis

struct RedisConnectionTests {
    @Test("with a password set, AUTH uses user_name and password; a wrong password fails naming AUTH")
    func authentication() throws {
        try withCluster { cluster in
            for port in cluster.ports { try cluster.cli(port, ["config", "set", "requirepass", "s3cret"]) }
            var configuration = redisConfiguration(cluster)
            configuration.userName = "default"
            configuration.password = "s3cret"
            let store = try RedisClusterStore(configuration: configuration)
            let table = try store.createTable("hps_et.m.auth", vecSize: 2, members: 1, expectedKeys: 50)
            let rows = TestRows(count: 50, vecSize: 2, seed: 17)
            try rows.insert(into: table)
            #expect(bitwiseEqual(lookup(table, keys: rows.keys).vectors, rows.vectors))

            configuration.password = "wrong"
            #expect { try RedisClusterStore(configuration: configuration) } throws: { error in
                "\(error)".contains("AUTH")
            }
            configuration.password = ""
            #expect { try RedisClusterStore(configuration: configuration) } throws: { error in
                "\(error)".contains("NOAUTH")
            }
            // The script's stop needs no password.
            for port in cluster.ports {
                try cluster.cli(port, ["-a", "s3cret", "--no-auth-warning", "config", "set", "requirepass", ""])
            }
        }
    }

    @Test("num_node_connections connections per node are opened and used in turn")
    func connectionsPerNode() throws {
        try withCluster { cluster in
            var configuration = redisConfiguration(cluster, partitions: 12)
            configuration.numNodeConnections = 3
            let store = try RedisClusterStore(configuration: configuration)
            let table = try store.createTable("hps_et.m.conns", vecSize: 2, members: 1, expectedKeys: 3000)
            let rows = TestRows(count: 3000, vecSize: 2, seed: 18)
            try rows.insert(into: table)
            for _ in 0..<3 { #expect(lookup(table, keys: rows.keys).missed.isEmpty) }
            for port in cluster.ports {
                let clients = try cluster.cli(port, ["client", "list"]).split(separator: "\n")
                    .filter { !$0.contains("cmd=client") }
                #expect(clients.count == 3, "node \(port): \(clients.count) connections")
            }
        }
    }
}
