package import HPSCUDA
import HPS
import HPSDemo

/// The GPU benchmarks of `hps bench --device gpu`, each timed with CUDA
/// events (median of many runs after a warm-up, inputs rotated among several
/// key sets), in the same run as a device-to-device copy of 256 MiB.
package enum GPUBenchmark {
    /// One measured line.
    package struct Row: Sendable {
        /// What was measured.
        package var name: String
        /// Median microseconds.
        package var microseconds: Double
        /// Bytes counted (read + written).
        package var bytes: Int
        /// Keys looked up per run (0 for the copy).
        package var keys: Int

        /// GB/s (10⁹ bytes) counting `bytes`.
        package var gigabytesPerSecond: Double { Double(bytes) / microseconds / 1e3 }
        /// Billions of lookups per second.
        package var billionLookupsPerSecond: Double { Double(keys) / microseconds / 1e3 }
    }

    /// Median event time in microseconds of `body` over `runs` runs after `warmup`.
    static func time(stream: CUDAStream, runs: Int, warmup: Int = 10, _ body: (Int) throws -> Void) throws -> Double {
        let device = stream.device
        let start = try CUDAEvent(device: device), stop = try CUDAEvent(device: device)
        for i in 0..<warmup { try body(i) }
        var times: [Double] = []
        for i in 0..<runs {
            try start.record(stream)
            try body(i)
            try stop.record(stream)
            times.append(try stop.milliseconds(since: start) * 1000)
        }
        return percentile(times, 0.5)
    }

    /// Runs the benchmarks on device `deviceIndex` with the kernels tuned as
    /// `tuning` says; the random lookups read a table of `tableKeys` keys.
    package static func run(deviceIndex: Int = 0, runs: Int = 200, tuning: GPUTuning = GPUTuning(),
                           tableKeys: Int = 4_000_000) throws -> (device: String, rows: [Row]) {
        let device = try CUDADevice(index: deviceIndex)
        let kernels = try GPUKernels(device: device, tuning: tuning)
        let stream = try CUDAStream(device: device)
        var rows: [Row] = []

        // The physical limit: a device-to-device copy of 256 MiB.
        let copyBytes = 256 << 20
        let source = try DeviceBuffer<UInt8>(device: device, count: copyBytes)
        let target = try DeviceBuffer<UInt8>(device: device, count: copyBytes)
        try source.fill32(0x3F80_0000)
        let copy = try time(stream: stream, runs: 50) { _ in
            try stream.copy(to: target.address, from: source.address, bytes: copyBytes)
        }
        rows.append(Row(name: "device-to-device copy of 256 MiB", microseconds: copy, bytes: 2 * copyBytes, keys: 0))

        // The seed batch: tables of the seed model, 8 key sets rotated.
        let model = SeedModel()
        let directory = try TemporaryDirectory(prefix: "hps-gpu-bench")
        defer { directory.remove() }
        try model.write(to: directory.path)
        let tables = try GPUSeedModel(model: model, directory: directory.path, kernels: kernels, cacheType: .static)
        let t = model.tables, b = model.batchSize, k = model.keysPerSample, dim = model.dim
        let perTable = b * k, keysPerBatch = t * perTable
        let sets = 8
        var random = SplitMix64(seed: 31)
        let host = try PinnedBuffer<UInt8>(device: device, count: sets * keysPerBatch * tables.keyBytes)
        for set in 0..<sets {
            tables.pack(model.batch(&random), into: UnsafeMutableRawPointer(host.pointer) + set * keysPerBatch * tables.keyBytes)
        }
        let keys = try DeviceBuffer<UInt8>(device: device, count: sets * keysPerBatch * tables.keyBytes)
        try stream.copy(to: keys.address, from: UnsafeRawPointer(host.pointer), bytes: keys.count)
        let output = try DeviceBuffer<Float>(device: device, count: keysPerBatch * dim)
        let fusedStarts = try DeviceBuffer(device: device, copying: (0...t).map { Int32($0 * perTable) })
        let fusedMembers = try DeviceBuffer(device: device, copying: (0..<t).map { Int32($0) })
        let oneRun = try DeviceBuffer(device: device, copying: [Int32(0), Int32(perTable)])
        let memberZero = try DeviceBuffer(device: device, copying: [Int32(0)])
        let seedBytes = 2 * keysPerBatch * dim * 4
        func setKeys(_ i: Int) -> UInt64 { keys.address + UInt64((i % sets) * keysPerBatch * tables.keyBytes) }
        let fusedRuns = (0..<t).map { ($0, perTable) }
        let fused = try time(stream: stream, runs: runs) { i in
            try tables.lookup(tables.fused, keys: setKeys(i), count: keysPerBatch, runs: fusedRuns,
                              runArrays: (fusedStarts.address, fusedMembers.address), output: output.address,
                              layout: .samplesByRun, keysPerSample: k, stream: stream)
        }
        let unfused = try time(stream: stream, runs: runs) { i in
            for table in 0..<t {
                try tables.lookup(tables.unfused[table], keys: setKeys(i) + UInt64(table * perTable * tables.keyBytes),
                                  count: perTable, runs: [(0, perTable)], runArrays: (oneRun.address, memberZero.address),
                                  output: output.address + UInt64(table * perTable * dim * 4), layout: .keyOrder,
                                  keysPerSample: 1, stream: stream)
            }
        }
        // The same two with the keys copied from (pinned) host memory first, as
        // a caller with keys on the host makes them: one copy for the fused
        // lookup, one per table for the unfused ones.
        func hostKeys(_ i: Int, table: Int = 0) -> UnsafeRawPointer {
            UnsafeRawPointer(host.pointer) + ((i % sets) * keysPerBatch + table * perTable) * tables.keyBytes
        }
        let fusedFromHost = try time(stream: stream, runs: runs) { i in
            try stream.copy(to: setKeys(i), from: hostKeys(i), bytes: keysPerBatch * tables.keyBytes)
            try tables.lookup(tables.fused, keys: setKeys(i), count: keysPerBatch, runs: fusedRuns,
                              runArrays: (fusedStarts.address, fusedMembers.address), output: output.address,
                              layout: .samplesByRun, keysPerSample: k, stream: stream)
        }
        let unfusedFromHost = try time(stream: stream, runs: runs) { i in
            for table in 0..<t {
                let tableKeys = setKeys(i) + UInt64(table * perTable * tables.keyBytes)
                try stream.copy(to: tableKeys, from: hostKeys(i, table: table), bytes: perTable * tables.keyBytes)
                try tables.lookup(tables.unfused[table], keys: tableKeys, count: perTable, runs: [(0, perTable)],
                                  runArrays: (oneRun.address, memberZero.address),
                                  output: output.address + UInt64(table * perTable * dim * 4), layout: .keyOrder,
                                  keysPerSample: 1, stream: stream)
            }
        }
        rows.append(Row(name: "seed batch fused: 1 launch, 8 tables × 6,656 keys, vec 128, into the dense input", microseconds: fused,
                        bytes: seedBytes, keys: keysPerBatch))
        rows.append(Row(name: "seed batch unfused: 8 launches, one per table", microseconds: unfused, bytes: seedBytes, keys: keysPerBatch))
        rows.append(Row(name: "seed batch fused, keys from host memory: 1 copy + 1 launch", microseconds: fusedFromHost,
                        bytes: seedBytes, keys: keysPerBatch))
        rows.append(Row(name: "seed batch unfused, keys from host memory: 8 copies + 8 launches", microseconds: unfusedFromHost,
                        bytes: seedBytes, keys: keysPerBatch))
        rows += try dynamicSeedBatch(model: model, directory: directory.path, kernels: kernels, deviceKeys: keys,
                                     sets: sets, output: output, runs: runs)

        // 1M lookups from 4M keys (another table size shows how the index's size matters), vec 128 and 64.
        for dim in [128, 64] {
            rows.append(try randomLookups(kernels: kernels, stream: stream, tableKeys: tableKeys, lookups: 1_000_000, dim: dim, runs: 50))
        }
        rows.append(try randomLookups(kernels: kernels, stream: stream, tableKeys: 4_000_000, lookups: 1_000_000, dim: 128,
                                      runs: 20, placement: .mappedHost))
        rows += try storageRows(model: model, directory: directory.path, kernels: kernels, stream: stream, tableKeys: tableKeys,
                                setKeys: setKeys, runs: runs)
        for row in try GPUCacheBenchmark.run(kernels: kernels) {
            rows.append(Row(name: "\(row.name): hit rate \(String(row.hitRate).prefix(6))", microseconds: row.microseconds,
                            bytes: 2 * row.keys * 128 * 4, keys: row.keys))
        }
        return (device.name, rows)
    }

    /// The seed batch through the dynamic cache of the seed configuration
    /// (pre-filled, hit rate 1.0), into the dense input on the device: where
    /// the time of one call goes. The kernel alone (events); the cache's call
    /// from keys on the device, on the host clock and its device part by
    /// events on the cache's stream (copies and kernel); and the call a
    /// session makes, from keys in host memory.
    static func dynamicSeedBatch(model: SeedModel, directory: String, kernels: GPUKernels,
                                 deviceKeys: DeviceBuffer<UInt8>, sets: Int, output: DeviceBuffer<Float>, runs: Int) throws -> [Row] {
        let device = kernels.device
        let tables = try GPUSeedModel(model: model, directory: directory, kernels: kernels, cacheType: .dynamic)
        guard case .dynamicCache(let cache) = tables.fused else { return [] }
        let t = model.tables, k = model.keysPerSample, perTable = model.batchSize * k, keysPerBatch = t * perTable
        let seedBytes = 2 * keysPerBatch * model.dim * 4
        let fusedRuns = (0..<t).map { (member: $0, count: perTable) }
        func setKeys(_ i: Int) -> UInt64 { deviceKeys.address + UInt64((i % sets) * keysPerBatch * tables.keyBytes) }
        let starts = try DeviceBuffer(device: device, copying: (0...t).map { Int32($0 * perTable) })
        let members = try DeviceBuffer(device: device, copying: (0..<t).map { Int32($0) })
        let misses = try DeviceBuffer<UInt32>(device: device, count: 1)
        try misses.fill32(0)
        let kernelOnly = try time(stream: cache.stream, runs: runs) { i in
            try LookupLaunch(keys: setKeys(i), count: keysPerBatch, runStarts: starts.address, runMembers: members.address, runs: t,
                             slots: cache.slots.address, capacity: cache.slotCapacity, rowBits: cache.rowBits,
                             vectors: cache.vectors.address, defaults: cache.defaults.address, output: output.address,
                             layout: .samplesByRun, keysPerSample: k, misses: misses.address, stamps: cache.stamps.address,
                             epoch: 2).launch(cache.lookupKernel, kernels: cache.kernels, stream: cache.stream)
        }
        guard try misses.download()[0] == 0 else { throw ToolFailure("the pre-filled dynamic cache missed keys it holds") }
        var hostTimes: [Double] = [], deviceTimes: [Double] = []
        let begin = try CUDAEvent(device: device), end = try CUDAEvent(device: device)
        for i in 0..<(runs + 10) {
            let start = ContinuousClock.now
            try begin.record(cache.stream)
            let report = try cache.lookup(deviceKeys: setKeys(i), count: keysPerBatch, runs: fusedRuns, output: output.address,
                                          layout: .samplesByRun, keysPerSample: k)
            try end.record(cache.stream)
            let stop = ContinuousClock.now
            guard report.hits == report.keys else { throw ToolFailure("the pre-filled dynamic cache missed keys it holds") }
            if i >= 10 {
                hostTimes.append((stop - start).microseconds)
                deviceTimes.append(try end.milliseconds(since: begin) * 1000)
            }
        }
        // From host keys into device memory, as a session on the GPU looks up (the keys packed and copied by the cache).
        var random = SplitMix64(seed: 97)
        let batches = (0..<sets).map { _ in model.batch(&random).flatMap { $0 } }
        var sessionTimes: [Double] = []
        let dense = DevicePointer<Float>(device: device.index, address: output.address)
        var hits = TierHits(tiers: 2, members: t)
        var ignored: Float = 0
        let defaults = [Float](repeating: 0, count: t)
        for i in 0..<(runs + 10) {
            try batches[i % sets].withUnsafeBufferPointer { flat in
                try withUnsafeMutablePointer(to: &ignored) { out in
                    let runs = (0..<t).map { LookupRun(member: $0, keys: flat.baseAddress! + $0 * perTable, count: perTable, output: out) }
                    try runs.withUnsafeBufferPointer { runs in
                        try defaults.withUnsafeBufferPointer { defaults in
                            let start = ContinuousClock.now
                            try cache.lookup(CacheBatch(keys: flat, runs: runs, device: dense, layout: .samplesByRun(keysPerSample: k)),
                                             below: nil, defaults: defaults, hits: &hits)
                            if i >= 10 { sessionTimes.append((ContinuousClock.now - start).microseconds) }
                        }
                    }
                }
            }
        }
        guard hits.totalMissing == 0 else { throw ToolFailure("the pre-filled dynamic cache missed keys it holds") }
        return [
            Row(name: "seed batch, dynamic cache at hit rate 1.0: the lookup kernel alone", microseconds: kernelOnly,
                bytes: seedBytes, keys: keysPerBatch),
            Row(name: "seed batch, dynamic cache at hit rate 1.0: its lookup from device keys, device part (copies + kernel, events)",
                microseconds: percentile(deviceTimes, 0.5), bytes: seedBytes, keys: keysPerBatch),
            Row(name: "seed batch, dynamic cache at hit rate 1.0: its lookup from device keys, whole call (host clock)",
                microseconds: percentile(hostTimes, 0.5), bytes: seedBytes, keys: keysPerBatch),
            Row(name: "seed batch, dynamic cache at hit rate 1.0: a session's lookup from host keys into the dense input (host clock)",
                microseconds: percentile(sessionTimes, 0.5), bytes: seedBytes, keys: keysPerBatch),
        ]
    }

    /// The fused seed batch and the 1M random lookups in each quantized
    /// `vector_storage`. A row's bytes are those it moves at the least: the
    /// stored rows read and the float32 rows written.
    static func storageRows(model: SeedModel, directory: String, kernels: GPUKernels, stream: CUDAStream, tableKeys: Int,
                            setKeys: (Int) -> UInt64, runs: Int) throws -> [Row] {
        var rows: [Row] = []
        let t = model.tables, k = model.keysPerSample, perTable = model.batchSize * k, keysPerBatch = t * perTable
        let device = kernels.device
        let output = try DeviceBuffer<Float>(device: device, count: keysPerBatch * model.dim)
        let starts = try DeviceBuffer(device: device, copying: (0...t).map { Int32($0 * perTable) })
        let members = try DeviceBuffer(device: device, copying: (0..<t).map { Int32($0) })
        for storage in VectorStorage.allCases where storage != .fp32 {
            let tables = try GPUSeedModel(model: model, directory: directory, kernels: kernels, cacheType: .static, storage: storage)
            let us = try time(stream: stream, runs: runs) { i in
                try tables.lookup(tables.fused, keys: setKeys(i), count: keysPerBatch, runs: (0..<t).map { ($0, perTable) },
                                  runArrays: (starts.address, members.address), output: output.address,
                                  layout: .samplesByRun, keysPerSample: k, stream: stream)
            }
            rows.append(Row(name: "seed batch fused, \(storage.rawValue) storage", microseconds: us,
                            bytes: keysPerBatch * (storage.rowBytes(dim: model.dim) + model.dim * 4), keys: keysPerBatch))
        }
        // The floor under any lookup whose output is float32: writing that output alone (cuMemsetD32Async).
        for dim in [128, 64] {
            let bytes = 1_000_000 * dim * 4
            let output = try DeviceBuffer<UInt8>(device: device, count: bytes)
            let us = try time(stream: stream, runs: 50) { _ in
                try stream.fill32(output.address, pattern: 0x3F80_0000, count: bytes / 4)
            }
            rows.append(Row(name: "writing the float32 output of 1M lookups at vec \(dim) alone (memset)", microseconds: us,
                            bytes: bytes, keys: 0))
        }
        for dim in [128, 64] {
            for storage in VectorStorage.allCases where storage != .fp32 {
                rows.append(try randomLookups(kernels: kernels, stream: stream, tableKeys: tableKeys, lookups: 1_000_000, dim: dim,
                                              runs: 50, storage: storage))
            }
            // For callers that take float16 rows: half the bytes written.
            for storage in VectorStorage.allCases {
                rows.append(try randomLookups(kernels: kernels, stream: stream, tableKeys: tableKeys, lookups: 1_000_000, dim: dim,
                                              runs: 50, storage: storage, element: .float16))
            }
        }
        return rows
    }

    /// `lookups` random lookups (all hits) from a static table of `tableKeys` int64 keys.
    static func randomLookups(kernels: GPUKernels, stream: CUDAStream, tableKeys: Int, lookups: Int, dim: Int, runs: Int,
                              placement: GPUStaticTable.Placement = .device, storage: VectorStorage = .fp32,
                              element: GPUStaticTable.OutputElement = .float32) throws -> Row {
        let device = kernels.device
        var random = SplitMix64(seed: UInt64(dim))
        let keys = (0..<tableKeys).map { _ in Int64(bitPattern: random.next()) }
        let vectors = (0..<(tableKeys * dim)).map { Float($0 & 4095) * 0.25 }
        let table = try GPUStaticTable(kernels: kernels, dim: dim, members: [(keys, vectors)], defaults: [0], int64Keys: true,
                                       placement: placement, storage: storage)
        let sets = 4
        let queries = (0..<(sets * lookups)).map { _ in keys[Int(random.next() % UInt64(tableKeys))] }
        let queryBuffer = try DeviceBuffer(device: device, copying: queries)
        let output = try DeviceBuffer<Float>(device: device, count: lookups * dim)
        let starts = try DeviceBuffer(device: device, copying: [Int32(0), Int32(lookups)])
        let members = try DeviceBuffer(device: device, copying: [Int32(0)])
        let misses = try DeviceBuffer<UInt32>(device: device, count: 1)
        try misses.fill32(0)
        let us = try time(stream: stream, runs: runs) { i in
            try table.lookup(keys: queryBuffer.address + UInt64((i % sets) * lookups * 8), count: lookups,
                             runStarts: starts.address, runMembers: members.address, runs: 1, output: output.address,
                             element: element, misses: misses.address, stream: stream)
        }
        try stream.synchronize()
        guard try misses.download()[0] == 0 else { throw ToolFailure("the benchmark table missed keys it holds") }
        let label = (placement == .device ? "" : ", uvm (vectors in mapped host memory)")
            + (storage == .fp32 && element == .float32 ? "" : ", \(storage.rawValue) storage")
            + (element == .float32 ? "" : ", fp16 output")
        let from = tableKeys == 4_000_000 ? "4M" : "\(tableKeys)"
        return Row(name: "1M random lookups from \(from) keys, vec \(dim)\(label)", microseconds: us,
                   bytes: lookups * (storage.rowBytes(dim: dim) + dim * (element == .float32 ? 4 : 2)), keys: lookups)
    }
}
