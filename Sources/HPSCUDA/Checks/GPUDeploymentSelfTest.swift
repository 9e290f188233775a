import HPS

/// Serves a small model from a configuration on the GPU with each cache
/// type and compares every lookup with the CPU session's, bit for bit:
/// fused and unfused, hits and keys found nowhere.
enum GPUDeploymentSelfTest {
    static func run(deviceIndex: Int, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        var cases: [GPUSelfTest.Case] = []
        var model = SeedModel()
        model.tables = 3
        model.vocab = 2000
        model.dim = 16
        model.batchSize = 32
        model.keysPerSample = 4
        model.seed = random.next()
        let directory = try TemporaryDirectory(prefix: "hps-gpu-selftest")
        defer { directory.remove() }
        try model.write(to: directory.path)
        for cacheType in [EmbeddingCacheType.static, .dynamic, .uvm] {
            for fuse in [true, false] {
                var configuration = try HPSConfiguration.load(path: "\(directory.path)/hps.json")
                configuration.fuseEmbeddingTable = fuse
                configuration.models[0].embeddingCacheType = cacheType
                configuration.models[0].deployedDevices = [deviceIndex]
                configuration.models[0].gpuCachePercentage = 0.5
                configuration.models[0].hitRateThreshold = 1.01
                configuration.models[0].defaultValues = [0.5, -1, 2]
                let server = try HierarchicalParameterServer(configuration: configuration)
                let deployment = try GPUDeployment(server: server)
                let gpu = try deployment.session(model: model.modelName, device: deviceIndex)
                let cpu = try server.session(model: model.modelName)
                var problem: String? = nil
                for _ in 0..<4 where problem == nil {
                    let requests = (0..<model.tables).map { table in
                        (table: table, keys: (0..<(model.batchSize * model.keysPerSample)).map { _ -> Int64 in
                            // One key in eight is outside every table.
                            random.next() % 8 == 0 ? Int64(3_000_000 + random.next() % 1000)
                                : Int64(table * model.vocab) + Int64(random.next() % UInt64(model.vocab))
                        })
                    }
                    let want = try cpu.lookup(tables: requests)
                    let got = try gpu.lookup(tables: requests)
                    for t in requests.indices where problem == nil {
                        if let e = want[t].indices.first(where: { want[t][$0].bitPattern != got[t][$0].bitPattern }) {
                            problem = "table \(t) key \(requests[t].keys[e / model.dim]) element \(e % model.dim): GPU \(got[t][e]), CPU \(want[t][e])"
                        }
                    }
                }
                cases.append(.init(name: "configuration served on GPU \(deviceIndex), \(cacheType.rawValue) cache, \(fuse ? "fused" : "unfused"), 4 batches",
                                   passed: problem == nil, detail: problem ?? "every element equal to the CPU session's"))
            }
        }
        return cases
    }
}
