import HPS
import HPSDemo
import HPSServer
import HPSStoreTestSupport
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A model sharded over GPUs (`gpu_sharding`) is served from its GPU
/// sessions like any other; its GPU caches are stood in for by CPU caches
/// here (CI has no GPU; `hps selftest` runs the same on a GPU).
struct ShardedServingTests {
    @Test("a sharded model is served from its GPU sessions, every request answered as the CPU session does",
          arguments: [GPUSharding.rowWise, .tableWise])
    func sharded(sharding: GPUSharding) async throws {
        let directory = try TemporaryDirectory(prefix: "hps-sharded-serving")
        defer { directory.remove() }
        var seed = SeedModel()
        (seed.tables, seed.vocab, seed.dim, seed.keyType, seed.batchSize, seed.keysPerSample) = (2, 100, 8, .int64, 4, 3)
        let path = try seed.write(to: directory.path)
        var configuration = try HPSConfiguration.load(path: path)
        configuration.models[0].gpuCache = true
        configuration.models[0].gpuSharding = sharding
        configuration.models[0].gpuShards = 3
        configuration.models[0].deployedDevices = [0, 1]
        let factory = StandInCacheFactory()
        let parameterServer = try HierarchicalParameterServer(configuration: configuration, backends: [], parallelism: 2,
                                                              logger: nil, caches: factory, loading: nil)
        let server = try HPSServer(parameterServer: parameterServer)
        #expect(server.devices[seed.modelName] == [0, 1])
        let cpu = try parameterServer.session(model: seed.modelName)
        let groups = cpu.plan.groups.count
        let calls = factory.calls.withLock { $0 }
        #expect(calls.count == (sharding == .rowWise ? 3 * groups : groups))
        var random = SplitMix64(seed: 3)
        let requests = (0..<6).map { round in
            // Keys of both tables and beyond them (answered with the defaults).
            (0..<2).map { _ in (0..<(round + 2)).map { _ in Int64(random.next() % 260) } }
        }
        let model = seed.modelName
        let metrics = ServerMetrics(sessions: parameterServer.deviceSessions(model: model))
        let app = Application(router: server.router())
        try await app.test(.router) { client in
            for keys in requests {
                let expected = try cpu.lookup(table: 0, keys: keys[0]) + cpu.lookup(table: 1, keys: keys[1])
                let body = ByteBuffer(json: inferRequest(keys: keys[0] + keys[1], numKeys: keys.map { Int64($0.count) }))
                try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: body) { response in
                    #expect(response.status == .ok)
                    let output = try response.json["outputs"]?.arrayValue?.first
                    #expect(floats(output?["data"]) == expected)
                }
            }
        }
        // The metrics name the group's devices: both GPUs for row-wise shards, the shard's GPU for a table.
        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        let devices = exposition.split(separator: "\n").filter { $0.hasPrefix("hps_l1_cache_hit_ratio{") }
        #expect(!devices.isEmpty, "\(exposition)")
        if sharding == .rowWise {
            #expect(devices.allSatisfy { $0.contains("device=\"0+1\"") }, "\(devices)")
        } else {
            #expect(devices.allSatisfy { !$0.contains("device=\"cpu\"") }, "\(devices)")
        }
    }
}
