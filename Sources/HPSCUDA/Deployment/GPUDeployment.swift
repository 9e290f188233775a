public import HPS

/// A configuration served from GPUs: for each model and each device of its
/// `deployed_device_list`, one GPU table per fusion group, of the model's
/// cache type (`static`; `dynamic` in front of the CPU tiers; or `uvm`, the
/// table in mapped host memory with the cache in front),
/// and one session per (model, device).
///
/// Thread safety: sessions may be used from any thread.
public final class GPUDeployment: @unchecked Sendable {
    /// The CPU tiers (the dynamic caches' tier below, and the reference).
    public let server: HierarchicalParameterServer
    private var sessions: [String: [Int: GPULookupSession]] = [:]
    private var kernelsByDevice: [Int: GPUKernels] = [:]

    /// Builds every model's GPU tables on every listed device.
    public init(server: HierarchicalParameterServer) throws {
        self.server = server
        let configuration = server.configuration
        let keyType: KeyType = configuration.supportLongLong ? .int64 : .int32
        for model in configuration.models {
            let cpu = try server.session(model: model.name)
            let plan = cpu.plan
            // Each group's member rows, read once for the tables built from files.
            var rows: [[(keys: [Int64], vectors: [Float])]] = []
            for group in plan.groups {
                rows.append(try group.tables.map { table in
                    try SparseModelFolder(path: HierarchicalParameterServer.resolve(model.sparseFiles[table], base: configuration.baseDirectory),
                                          table: model.tableNames[table], vecSize: model.vecSizes[table]).readAll(keyType: keyType)
                })
            }
            for deviceIndex in model.deployedDevices {
                let kernels = try kernelsByDevice[deviceIndex] ?? GPUKernels(device: CUDADevice(index: deviceIndex))
                kernelsByDevice[deviceIndex] = kernels
                var tables: [GPUTable] = []
                for (g, group) in plan.groups.enumerated() {
                    tables.append(try GPUTable.make(
                        cacheType: model.effectiveCacheType, model: model, kernels: kernels, dim: group.vecSize, rows: rows[g],
                        defaults: group.tables.map { model.defaultValues[$0] }, int64Keys: keyType == .int64,
                        lower: cpu.tierChain(group: g), what: "model \(model.name)"))
                }
                sessions[model.name, default: [:]][deviceIndex] = try GPULookupSession(cpu: cpu, kernels: kernels, tables: tables)
            }
        }
    }

    /// The session of a model on one of its devices.
    public func session(model: String, device: Int) throws -> GPULookupSession {
        guard let perDevice = sessions[model] else {
            throw LookupError.unknownModel(model, available: server.configuration.models.map(\.name))
        }
        guard let session = perDevice[device] else {
            throw CUDAError.unsupported("model \(model) is not deployed on GPU \(device); its deployed_device_list is \(perDevice.keys.sorted())")
        }
        return session
    }
}

/// Lookups of one model on one GPU: keys from host memory, one launch per
/// fusion group, vectors back in host memory.
public final class GPULookupSession: @unchecked Sendable {
    /// The CPU session of the same model (its plan, limits and checks).
    public let cpu: LookupSession
    let kernels: GPUKernels
    let tables: [GPUTable]
    let stream: CUDAStream
    let lock = ReadWriteLock()
    /// Keys, run arrays and outputs of a request, reused so requests allocate no device memory.
    let scratch: DeviceScratch

    init(cpu: LookupSession, kernels: GPUKernels, tables: [GPUTable]) throws {
        self.cpu = cpu
        self.kernels = kernels
        self.tables = tables
        stream = try CUDAStream(device: kernels.device)
        scratch = DeviceScratch(device: kernels.device)
    }

    /// The device.
    public var device: CUDADevice { kernels.device }

    /// Looks up several tables in one call: one launch per fusion group.
    /// - Returns: for each request, (n × vecSize) floats, as the CPU session's.
    public func lookup(tables requests: [(table: Int, keys: [Int64])]) throws -> [[Float]] {
        let model = cpu.model, plan = cpu.plan
        // The CPU session's checks: tables, limits, key range.
        var perTable = [Int](repeating: 0, count: model.tableCount)
        for request in requests {
            guard request.table >= 0 && request.table < model.tableCount else {
                throw LookupError.unknownTable(model: model.name, table: String(request.table), available: model.tableNames)
            }
            perTable[request.table] += request.keys.count
            if cpu.keyType == .int32, let bad = request.keys.first(where: { !cpu.keyType.admits($0) }) {
                throw LookupError.keyOutOfRange(table: model.tableNames[request.table], key: bad)
            }
        }
        for (table, count) in perTable.enumerated() where count > model.maxKeysPerLookup(table: table) {
            throw LookupError.tooManyKeys(model: model.name, table: model.tableNames[table], keys: count,
                                          maxBatchSize: model.maxBatchSize, maxPerSample: model.maxQueryKeysPerSample[table])
        }
        try device.makeCurrent()
        lock.lockWrite()
        defer { lock.unlock() }
        var outputs = requests.map { [Float](repeating: 0, count: $0.keys.count * model.vecSizes[$0.table]) }
        for (g, group) in plan.groups.enumerated() {
            let members = requests.indices.filter { plan.groupOfTable[requests[$0].table] == g && !requests[$0].keys.isEmpty }
            guard !members.isEmpty else { continue }
            let keys = members.flatMap { requests[$0].keys }
            let runs = members.map { (member: plan.memberOfTable[requests[$0].table], count: requests[$0].keys.count) }
            // The previous group's download waited for the stream, so the buffers are free.
            let output = try scratch.buffer("output", bytes: keys.count * group.vecSize * 4)
            let keyBuffer = try scratch.buffer("keys", bytes: keys.count * (cpu.keyType == .int64 ? 8 : 4))
            if cpu.keyType == .int64 {
                try stream.upload(keys, to: keyBuffer.address)
            } else {
                try stream.upload(keys.map { UInt32(truncatingIfNeeded: $0) }, to: keyBuffer.address)
            }
            var starts: [Int32] = [0]
            for run in runs { starts.append(starts[starts.count - 1] + Int32(run.count)) }
            let runArrays = try scratch.buffer("runs", bytes: (2 * runs.count + 1) * 4)
            try stream.upload(starts + runs.map { Int32($0.member) }, to: runArrays.address)
            switch tables[g] {
            case .staticTable(let table):
                try table.lookup(keys: keyBuffer.address, count: keys.count, runStarts: runArrays.address,
                                 runMembers: runArrays.address + UInt64(4 * (runs.count + 1)), runs: runs.count,
                                 output: output.address, stream: stream)
            case .dynamicCache(let cache):
                try stream.synchronize()
                _ = try cache.lookup(deviceKeys: keyBuffer.address, count: keys.count, runs: runs, output: output.address,
                                     hostKeys: keys)
            }
            var host = [Float](repeating: 0, count: keys.count * group.vecSize)
            try stream.download(into: &host, from: output.address)
            var offset = 0
            for r in members {
                let n = requests[r].keys.count * group.vecSize
                outputs[r] = Array(host[offset..<(offset + n)])
                offset += n
            }
        }
        return outputs
    }
}
