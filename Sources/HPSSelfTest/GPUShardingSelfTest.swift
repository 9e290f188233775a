import HPSCUDA
import HPS
import HPSDemo

/// Serves a small model sharded over shards placed on one GPU (`gpu_shards`
/// 3 on one device of `deployed_device_list`), row-wise and table-wise, with
/// each cache type and key type, fused and unfused, and compares the GPU
/// session with the CPU session bit for bit (as `GPUDeploymentSelfTest`
/// does), before and after an online update. Row-wise: every shard on the
/// GPU, each asked some of the keys, and
/// device memory refused with one sentence. Table-wise: the groups spread
/// over the shards, and device memory compared too.
enum GPUShardingSelfTest {
    static func run(deviceIndex: Int, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        var cases: [GPUSelfTest.Case] = []
        let factory = GPUCacheFactory()
        for keyType in [KeyType.int32, .int64] {
            let model = GPUDeploymentSelfTest.smallModel(keyType: keyType, random: &random)
            let directory = try TemporaryDirectory(prefix: "hps-gpu-sharding")
            defer { directory.remove() }
            try model.write(to: directory.path)
            for sharding in [GPUSharding.rowWise, .tableWise] {
                for cacheType in [EmbeddingCacheType.static, .dynamic, .uvm] {
                    for fuse in [true, false] {
                        var configuration = try GPUDeploymentSelfTest.smallConfiguration(
                            directory: directory.path, cacheType: cacheType, fuse: fuse, deviceIndex: deviceIndex)
                        configuration.models[0].gpuSharding = sharding
                        configuration.models[0].gpuShards = 3
                        let name = "\(sharding.rawValue) sharded over 3 shards on GPU \(deviceIndex), \(cacheType.rawValue) cache, \(keyType == .int64 ? "int64" : "int32") keys, \(fuse ? "fused" : "unfused")"
                        let problem: String?
                        do {
                            let server = try HierarchicalParameterServer(configuration: configuration, gpu: factory)
                            problem = try check(server: server, model: model, sharding: sharding, deviceIndex: deviceIndex,
                                                cacheType: cacheType, fused: fuse, random: &random)
                        } catch {
                            problem = "\(error)"
                        }
                        cases.append(.init(name: name, passed: problem == nil,
                                           detail: problem ?? (sharding == .rowWise
                                               ? "every element equal to the CPU session's before and after an update, every shard asked, device memory refused"
                                               : "every element equal to the CPU session's, into host and device memory, before and after an update")))
                    }
                }
            }
        }
        return cases
    }

    /// The first problem of one sharded deployment, or nil.
    static func check(server: HierarchicalParameterServer, model: SeedModel, sharding: GPUSharding, deviceIndex: Int,
                      cacheType: EmbeddingCacheType, fused: Bool, random: inout SplitMix64) throws -> String? {
        let gpu = try server.session(model: model.modelName, device: deviceIndex)
        let deviceMemory = sharding != .rowWise
        if let problem = try GPUDeploymentSelfTest.compare(server: server, model: model, deviceIndex: deviceIndex,
                                                           cacheType: cacheType, fused: fused, deviceMemory: deviceMemory,
                                                           random: &random) {
            return problem
        }
        if sharding == .rowWise {
            for (g, cache) in gpu.groupCaches.enumerated() {
                guard let sharded = cache as? RowWiseShardedCache, sharded.shards.count == 3,
                      sharded.shards.allSatisfy({ $0.device == deviceIndex }) else {
                    return "group \(g)'s cache is \(cache.map { "\(type(of: $0))" } ?? "missing"), not 3 row-wise shards on GPU \(deviceIndex)"
                }
                let asked = sharded.shards.map(\.statistics.keys)
                // Random keys reach every shard; that each got only its own is what the equal answers show.
                guard asked.allSatisfy({ $0 > 0 }) else {
                    return "group \(g): its shards were asked \(asked) keys; a shard was left out"
                }
            }
            let keys: [Int64] = [1, 2]
            do {
                try keys.withUnsafeBufferPointer { k in
                    _ = try gpu.lookup([(table: 0, keys: k)], into: .device(DevicePointer(device: deviceIndex, address: 4096),
                                                                             count: 2 * model.dim))
                }
                return "a row-wise sharded session accepted a destination in device memory"
            } catch {
                guard "\(error)".contains("gpu_sharding row_wise") else { return "device memory was refused with: \(error)" }
            }
        }
        return try GPUDeploymentSelfTest.checkUpdate(server: server, model: model, deviceIndex: deviceIndex, cacheType: cacheType,
                                                     fused: fused, deviceMemory: deviceMemory, random: &random)
    }
}
