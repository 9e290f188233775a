import HPSCUDA
import HPS
import HPSDemo

/// Serves a small model from a configuration through
/// `HierarchicalParameterServer(configuration:gpu: GPUCacheFactory())` with
/// each cache type and key type, fused and unfused, and compares every
/// lookup of the GPU session with the CPU session's, bit for bit: into host
/// memory, into device memory (poisoned first, downloaded after) in both
/// layouts, with hits and keys found nowhere, and the counts of defaults.
/// Then the GPU prediction head against the CPU's.
enum GPUDeploymentSelfTest {
    static func run(deviceIndex: Int, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        var cases: [GPUSelfTest.Case] = []
        // One factory for every configuration: each GPU is opened once.
        let factory = GPUCacheFactory()
        for keyType in [KeyType.int32, .int64] {
            let model = smallModel(keyType: keyType, random: &random)
            let directory = try TemporaryDirectory(prefix: "hps-gpu-selftest")
            defer { directory.remove() }
            try model.write(to: directory.path)
            for cacheType in [EmbeddingCacheType.static, .dynamic, .uvm] {
                for fuse in [true, false] {
                    let configuration = try smallConfiguration(directory: directory.path, cacheType: cacheType, fuse: fuse,
                                                               deviceIndex: deviceIndex)
                    let server = try HierarchicalParameterServer(configuration: configuration, gpu: factory)
                    let name = "configuration served on GPU \(deviceIndex) through a GPUCacheFactory, \(cacheType.rawValue) cache, \(keyType == .int64 ? "int64" : "int32") keys, \(fuse ? "fused" : "unfused"), 4 batches"
                    let problem = try compare(server: server, model: model, deviceIndex: deviceIndex, cacheType: cacheType,
                                              fused: fuse, random: &random)
                    cases.append(.init(name: name, passed: problem == nil,
                                       detail: problem ?? "every element equal to the CPU session's, into host and device memory, and as many defaults"))
                    let updateProblem = try checkUpdate(server: server, model: model, deviceIndex: deviceIndex, cacheType: cacheType,
                                                        fused: fuse, random: &random)
                    cases.append(.init(name: "online update through the server, \(cacheType.rawValue) cache, \(keyType == .int64 ? "int64" : "int32") keys, \(fuse ? "fused" : "unfused")",
                                       passed: updateProblem == nil,
                                       detail: updateProblem ?? "the GPU session answers every updated and added key with its new vector, and equals the CPU session's after it"))
                    let reloadProblem = try checkReload(server: server, model: model, directory: directory.path, deviceIndex: deviceIndex,
                                                        cacheType: cacheType, fused: fuse, random: &random)
                    cases.append(.init(name: "model reloaded with new files while served, \(cacheType.rawValue) cache, \(keyType == .int64 ? "int64" : "int32") keys, \(fuse ? "fused" : "unfused")",
                                       passed: reloadProblem == nil,
                                       detail: reloadProblem ?? "the new version's GPU session equals its CPU session and differs from the old; the old one answered until its tables were dropped"))
                    if cacheType != .uvm {
                        let problem = try comparePredictions(server: server, model: model, deviceIndex: deviceIndex, fused: fuse,
                                                             random: &random)
                        cases.append(.init(name: "GPU prediction head, \(cacheType.rawValue) cache, \(keyType == .int64 ? "int64" : "int32") keys, \(fuse ? "fused" : "unfused")",
                                           passed: problem == nil,
                                           detail: problem ?? (fuse ? "predictions within 1e-5 of the CPU head's (the dense-input layout is checked bit for bit above), as many defaults"
                                                                    : "refused with one sentence: the tables are not one fusion group")))
                    }
                }
            }
        }
        return cases
    }

    /// The small model the deployment checks serve: 3 tables of 2,000 keys
    /// × 16 floats, batches of 32 samples of 4 keys per table.
    static func smallModel(keyType: KeyType, random: inout SplitMix64) -> SeedModel {
        var model = SeedModel()
        model.tables = 3
        model.vocab = 2000
        model.dim = 16
        model.batchSize = 32
        model.keysPerSample = 4
        model.keyType = keyType
        model.seed = random.next()
        return model
    }

    /// The small model's configuration written in `directory`, served from
    /// GPU `deviceIndex` with `cacheType`, fused or not: half of each table
    /// cached, misses read now (hit rate threshold above 1), and a default
    /// value per table that no vector holds.
    static func smallConfiguration(directory: String, cacheType: EmbeddingCacheType, fuse: Bool,
                                   deviceIndex: Int) throws -> HPSConfiguration {
        var configuration = try HPSConfiguration.load(path: "\(directory)/hps.json")
        configuration.fuseEmbeddingTable = fuse
        configuration.models[0].embeddingCacheType = cacheType
        configuration.models[0].deployedDevices = [deviceIndex]
        configuration.models[0].gpuCachePercentage = 0.5
        configuration.models[0].hitRateThreshold = 1.01
        configuration.models[0].defaultValues = [0.5, -1, 2]
        return configuration
    }

    /// One batch's random keys per table: one key in eight is in no table.
    static func randomKeys(_ model: SeedModel, random: inout SplitMix64) -> [[Int64]] {
        (0..<model.tables).map { table in
            (0..<(model.batchSize * model.keysPerSample)).map { _ -> Int64 in
                random.next() % 8 == 0 ? Int64(3_000_000 + random.next() % 1000)
                    : Int64(table * model.vocab) + Int64(random.next() % UInt64(model.vocab))
            }
        }
    }

    /// The first difference between the GPU and CPU sessions, or nil.
    /// - Parameter deviceMemory: whether the lookups into device memory and
    ///   from device keys are compared too (a row-wise sharded model refuses them).
    static func compare(server: HierarchicalParameterServer, model: SeedModel, deviceIndex: Int, cacheType: EmbeddingCacheType,
                        fused: Bool, deviceMemory: Bool = true, random: inout SplitMix64) throws -> String? {
        let gpu = try server.session(model: model.modelName, device: deviceIndex)
        let cpu = try server.session(model: model.modelName)
        let kind = ["static": "gpu_static", "dynamic": "gpu_dynamic", "uvm": "gpu_uvm"][cacheType.rawValue]!
        guard gpu.device == deviceIndex, gpu.tierNames.first == kind else {
            return "the GPU session runs on \(gpu.device.map { "GPU \($0)" } ?? "the CPU") with tiers \(gpu.tierNames), not on GPU \(deviceIndex) behind \(kind)"
        }
        let device = try CUDADevice(index: deviceIndex)
        let dim = model.dim, k = model.keysPerSample, perTable = model.batchSize * k
        let floats = model.tables * perTable * dim
        let deviceOutput = try DeviceBuffer<Float>(device: device, count: floats)
        for batch in 0..<4 {
            let keys = randomKeys(model, random: &random)
            let flat = keys.flatMap { $0 }
            var want = [Float](repeating: 0, count: floats)
            var got = [Float](repeating: .nan, count: floats)
            let (wantCounts, gotCounts) = try flat.withUnsafeBufferPointer { flat in
                let parts = (0..<model.tables).map { table in
                    (table: table, keys: UnsafeBufferPointer(rebasing: flat[(table * perTable)..<((table + 1) * perTable)]))
                }
                let wantCounts = try want.withUnsafeMutableBufferPointer { try cpu.lookup(parts, into: .host($0)) }
                let gotCounts = try got.withUnsafeMutableBufferPointer { try gpu.lookup(parts, into: .host($0)) }
                return (wantCounts, gotCounts)
            }
            func difference(_ got: [Float], at index: (Int) -> Int, _ what: String) -> String? {
                for i in 0..<floats where got[index(i)].bitPattern != want[i].bitPattern {
                    let table = i / (perTable * dim), key = flat[i / dim]
                    return "batch \(batch), \(what): table \(table) key \(key) element \(i % dim): GPU \(got[index(i)]), CPU \(want[i])"
                }
                return nil
            }
            if let problem = difference(got, at: { $0 }, "into host memory") { return problem }
            if gotCounts.defaults != wantCounts.defaults || gotCounts.keys != wantCounts.keys
                || gotCounts.tierHits.reduce(0, +) + gotCounts.defaults != gotCounts.keys {
                return "batch \(batch): the GPU session counted \(gotCounts.keys) keys, \(gotCounts.tierHits) per tier and \(gotCounts.defaults) defaults; the CPU \(wantCounts.keys) keys and \(wantCounts.defaults) defaults"
            }
            guard deviceMemory else { continue }
            // Into device memory, run after run.
            try deviceOutput.fill32(0xFFFF_FFFF)
            try flat.withUnsafeBufferPointer { flat in
                let parts = (0..<model.tables).map { table in
                    (table: table, keys: UnsafeBufferPointer(rebasing: flat[(table * perTable)..<((table + 1) * perTable)]))
                }
                try gpu.lookup(parts, into: .device(DevicePointer(device: deviceIndex, address: deviceOutput.address), count: floats))
            }
            if let problem = difference(try deviceOutput.download(), at: { $0 }, "into device memory") { return problem }
            // From keys in device memory: the tables' keys end to end (read in
            // place), then apart with gaps between them (gathered on the
            // device), each written by a copy on another stream that the
            // lookup must wait for.
            let keyStream = try CUDAStream(device: device)
            for gaps in [0, 5] {
                let stride = perTable + gaps
                var spread = [Int64](repeating: -1, count: model.tables * stride)
                for t in 0..<model.tables {
                    for j in 0..<perTable { spread[t * stride + j] = flat[t * perTable + j] }
                }
                let width = gpu.keyType.byteWidth
                let keyBuffer = try DeviceBuffer<UInt8>(device: device, count: spread.count * width)
                if gpu.keyType == .int64 {
                    try keyStream.upload(spread, to: keyBuffer.address)
                } else {
                    try keyStream.upload(spread.map { UInt32(truncatingIfNeeded: $0) }, to: keyBuffer.address)
                }
                try deviceOutput.fill32(0xFFFF_FFFF)
                let parts = (0..<model.tables).map { t in
                    (table: t, keys: DeviceKeys(start: DevicePointer(device: deviceIndex, address: keyBuffer.address + UInt64(t * stride * width)),
                                                count: perTable, type: gpu.keyType))
                }
                let counts = try gpu.lookup(deviceKeys: parts, after: DeviceStream(handle: UInt(bitPattern: keyStream.handle)),
                                            into: .device(DevicePointer(device: deviceIndex, address: deviceOutput.address), count: floats))
                try keyStream.synchronize()
                let what = gaps == 0 ? "from device keys end to end" : "from device keys apart (gathered)"
                if let problem = difference(try deviceOutput.download(), at: { $0 }, what) { return problem }
                // A static table answers device keys in stream order (unless an
                // update gave the tiers below keys it lacks): the call cannot
                // know its defaults, which the table's statistics count later.
                let inStreamOrder = cacheType == .static && counts.defaults == 0
                if counts.keys != wantCounts.keys || (!inStreamOrder && counts.defaults != wantCounts.defaults) {
                    return "batch \(batch), \(what): the GPU session counted \(counts.keys) keys and \(counts.defaults) defaults; the CPU \(wantCounts.keys) and \(wantCounts.defaults)"
                }
            }
            // Into device memory as a dense layer's input (one fusion group only).
            if fused {
                try deviceOutput.fill32(0xFFFF_FFFF)
                try flat.withUnsafeBufferPointer { flat in
                    let parts = (0..<model.tables).map { table in
                        (table: table, keys: UnsafeBufferPointer(rebasing: flat[(table * perTable)..<((table + 1) * perTable)]))
                    }
                    try gpu.lookup(parts, into: .device(DevicePointer(device: deviceIndex, address: deviceOutput.address), count: floats),
                                   layout: .samplesByRun(keysPerSample: k))
                }
                let dense = try deviceOutput.download()
                let problem = difference(dense, at: { i in
                    // Table t's key j of sample s = j / k sits at row (s × tables + t) × k + j % k.
                    let row = i / dim, t = row / perTable, j = row % perTable
                    return (((j / k) * model.tables + t) * k + j % k) * dim + i % dim
                }, "into device memory in the dense-input layout")
                if let problem { return problem }
            }
        }
        // The array API too, once.
        let requests = randomKeys(model, random: &random).enumerated().map { (table: $0.offset, keys: $0.element) }
        let want = try cpu.lookup(tables: requests), got = try gpu.lookup(tables: requests)
        for t in requests.indices {
            if let e = want[t].indices.first(where: { want[t][$0].bitPattern != got[t][$0].bitPattern }) {
                return "lookup(tables:): table \(t) key \(requests[t].keys[e / dim]) element \(e % dim): GPU \(got[t][e]), CPU \(want[t][e])"
            }
        }
        return nil
    }

    /// Applies an update to every table through `HierarchicalParameterServer.update`
    /// (held keys, and keys of no table, which the update adds), then checks
    /// that the GPU session answers each with its new vector, that the
    /// report counts what the GPU table did, and that the sessions agree.
    static func checkUpdate(server: HierarchicalParameterServer, model: SeedModel, deviceIndex: Int,
                            cacheType: EmbeddingCacheType, fused: Bool, deviceMemory: Bool = true,
                            random: inout SplitMix64) throws -> String? {
        let gpu = try server.session(model: model.modelName, device: deviceIndex)
        let dim = model.dim
        for table in 0..<model.tables {
            let held = (0..<64).map { _ in Int64(table * model.vocab) + Int64(random.next() % UInt64(model.vocab)) }
            let added = (0..<16).map { _ in Int64(3_000_000 + random.next() % 1000) }
            let keys = held + added
            let vectors = (0..<(keys.count * dim)).map { _ in random.nextFloat(-4, 4) }
            let report = try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in try server.update(model: model.modelName, table: table, keys: k, vectors: v) }
            }
            var last: [Int64: Int] = [:]
            for (i, key) in keys.enumerated() { last[key] = i }
            if cacheType == .static {
                let unheld = Set(added).count
                if report.keysNotInStaticTables != unheld {
                    return "table \(table): the update reported \(report.keysNotInStaticTables) keys not in the static table (\(report.unheldKeys)), not \(unheld)"
                }
                if report.cachedRowsUpdated < Set(held).count {
                    return "table \(table): the update wrote \(report.cachedRowsUpdated) cached rows, fewer than the \(Set(held).count) held keys"
                }
            }
            let got = try gpu.lookup(tables: [(table: table, keys: keys)])[0]
            for (i, key) in keys.enumerated() {
                let row = last[key]!
                for e in 0..<dim where got[i * dim + e].bitPattern != vectors[row * dim + e].bitPattern {
                    return "table \(table) key \(key)\(i >= held.count ? " (added by the update)" : "") element \(e): the GPU session answers \(got[i * dim + e]) after the update, not \(vectors[row * dim + e])"
                }
            }
        }
        return try compare(server: server, model: model, deviceIndex: deviceIndex, cacheType: cacheType, fused: fused,
                           deviceMemory: deviceMemory, random: &random)
    }

    /// Rewrites the model's files with another seed and loads them as a new
    /// version (`HierarchicalParameterServer.load`, as `hps serve`'s model
    /// control does): the new GPU session must equal the new CPU session,
    /// differ from the old version, and the old version must keep answering
    /// its own rows until its tables are dropped. The files are put back after.
    static func checkReload(server: HierarchicalParameterServer, model: SeedModel, directory: String, deviceIndex: Int,
                            cacheType: EmbeddingCacheType, fused: Bool, random: inout SplitMix64) throws -> String? {
        let old = try server.deployment(model: model.modelName)
        let keys = (0..<16).map { Int64($0) }
        guard let oldGPU = old.deviceSessions[deviceIndex] else { return "the model has no session on GPU \(deviceIndex)" }
        let before = try oldGPU.lookup(tables: [(table: 0, keys: keys)])[0]
        var changed = model
        changed.seed = model.seed &+ 1
        _ = try changed.write(to: directory)
        defer { _ = try? model.write(to: directory) }
        let (loaded, replaced) = try server.load(old.model)
        guard replaced === old, loaded.generation == old.generation + 1 else {
            return "the load replaced generation \(replaced?.generation ?? -1) with \(loaded.generation), not \(old.generation) with \(old.generation + 1)"
        }
        let gpu = try server.session(model: model.modelName, device: deviceIndex)
        let cpu = try server.session(model: model.modelName)
        let got = try gpu.lookup(tables: [(table: 0, keys: keys)])[0]
        let want = try cpu.lookup(tables: [(table: 0, keys: keys)])[0]
        if let e = got.indices.first(where: { got[$0].bitPattern != want[$0].bitPattern }) {
            return "after the reload, key \(keys[e / model.dim]) element \(e % model.dim): GPU \(got[e]), CPU \(want[e])"
        }
        if got == before { return "the reloaded version answers the old version's vectors" }
        if try oldGPU.lookup(tables: [(table: 0, keys: keys)])[0] != before {
            return "the old version's GPU session changed its answers before its tables were dropped"
        }
        let problems = server.dropTables(of: old)
        if !problems.isEmpty { return "dropping the old version's tables: \(problems.joined(separator: "; "))" }
        return try compare(server: server, model: changed, deviceIndex: deviceIndex, cacheType: cacheType, fused: fused, random: &random)
    }

    /// The first difference between the GPU and CPU prediction heads, or nil;
    /// for an unfused model, whether the GPU head refuses it.
    static func comparePredictions(server: HierarchicalParameterServer, model: SeedModel, deviceIndex: Int, fused: Bool,
                                   random: inout SplitMix64) throws -> String? {
        let gpuSession = try server.session(model: model.modelName, device: deviceIndex)
        guard fused else {
            do {
                _ = try GPUPredictionModel(session: gpuSession, seed: model)
                return "a GPU prediction head was made over tables in \(gpuSession.plan.groups.count) fusion groups"
            } catch {
                if case .shape = error { return nil }
                return "an unfused model was refused with \(error), not a shape error"
            }
        }
        let cpu = try PredictionModel(session: try server.session(model: model.modelName), seed: model)
        let gpu = try GPUPredictionModel(session: gpuSession, seed: model)
        for batch in 0..<3 {
            let keys = batch == 0 ? model.batch(&random) : randomKeys(model, random: &random)
            // Fewer samples than the batch once: the device buffers are reused, not regrown.
            let samples = batch == 2 ? model.batchSize / 2 : model.batchSize
            let cut = keys.map { Array($0[0..<(samples * model.keysPerSample)]) }
            let want = try cpu.predict(keys: cut, samples: samples)
            let got = try gpu.predict(keys: cut, samples: samples)
            guard got.predictions.count == samples else { return "batch \(batch): \(got.predictions.count) predictions for \(samples) samples" }
            for s in 0..<samples where abs(got.predictions[s] - want.predictions[s]) > 1e-5 * max(1, abs(want.predictions[s])) {
                return "batch \(batch) sample \(s): GPU prediction \(got.predictions[s]), CPU \(want.predictions[s])"
            }
            if got.counts.defaults != want.counts.defaults || got.counts.keys != want.counts.keys {
                return "batch \(batch): the GPU head counted \(got.counts.keys) keys and \(got.counts.defaults) defaults, the CPU \(want.counts.keys) and \(want.counts.defaults)"
            }
        }
        return nil
    }
}
