import HPSCUDA
package import HPS

/// The seed notebook on the GPU: keys from host memory to predictions in
/// host memory, unfused (a copy, a lookup launch per table, the concat and
/// the dense head) and fused (one copy, one lookup launch straight into the
/// dense head's input, the dense head), on the same inputs as the CPU demo.
package struct GPUSeedDemo: Sendable {
    /// The model's sizes.
    package var model: SeedModel
    /// Batches timed after one warm-up batch.
    package var iterations: Int
    /// The GPU's ordinal.
    package var deviceIndex: Int
    /// The cache type, or nil for the configuration's.
    package var cacheType: EmbeddingCacheType?

    /// Creates a demo.
    package init(model: SeedModel = SeedModel(), iterations: Int = 100, deviceIndex: Int = 0, cacheType: EmbeddingCacheType? = nil) {
        self.model = model
        self.iterations = iterations
        self.deviceIndex = deviceIndex
        self.cacheType = cacheType
    }

    /// Runs the demo over the model in `directory` (written by `SeedModel.write`).
    package func run(directory: String) throws -> SeedDemo.Result {
        guard iterations >= 1 else { throw ToolFailure("--iterations must be at least 1, not \(iterations)") }
        guard model.dim % 4 == 0 else { throw ToolFailure("the GPU demo needs a vec size that is a multiple of 4, not \(model.dim)") }
        let device = try CUDADevice(index: deviceIndex)
        let kernels = GPUKernels(device: device)
        let tables = try GPUSeedModel(model: model, directory: directory, kernels: kernels, cacheType: cacheType)
        let t = model.tables, b = model.batchSize, k = model.keysPerSample, dim = model.dim
        let perTable = b * k
        let keysPerBatch = t * perTable
        let features = t * k * dim

        var random = SplitMix64(seed: model.seed ^ 0xBA7C_4E5)
        let batches = (0...iterations).map { _ in model.batch(&random) }
        let dense = model.denseHead

        let stream = try CUDAStream(device: device)
        let hostKeys = try PinnedBuffer<UInt8>(device: device, count: batches.count * keysPerBatch * tables.keyBytes)
        for (i, batch) in batches.enumerated() {
            tables.pack(batch, into: UnsafeMutableRawPointer(hostKeys.pointer) + i * keysPerBatch * tables.keyBytes)
        }
        let hostPredictions = try PinnedBuffer<Float>(device: device, count: b)
        let keys = try DeviceBuffer<UInt8>(device: device, count: keysPerBatch * tables.keyBytes)
        let denseInput = try DeviceBuffer<Float>(device: device, count: b * features)
        let tableOutputs = try DeviceBuffer<Float>(device: device, count: b * features)
        let predictions = try DeviceBuffer<Float>(device: device, count: b)
        let weights = try DeviceBuffer(device: device, copying: dense.weights)
        let fusedStarts = try DeviceBuffer(device: device, copying: (0...t).map { Int32($0 * perTable) })
        let fusedMembers = try DeviceBuffer(device: device, copying: (0..<t).map { Int32($0) })
        let oneRunStarts = try DeviceBuffer(device: device, copying: [Int32(0), Int32(perTable)])
        let memberZero = try DeviceBuffer(device: device, copying: [Int32(0)])
        let denseKernel = try kernels.dense()
        let concatKernel = try kernels.concat()
        let start = try CUDAEvent(device: device), looked = try CUDAEvent(device: device)

        func runBatch(_ index: Int, fused: Bool) throws -> (total: Double, lookup: Double, predictions: [Float]) {
            let begin = ContinuousClock.now
            let source = UnsafeRawPointer(hostKeys.pointer) + index * keysPerBatch * tables.keyBytes
            if fused {
                try stream.copy(to: keys.address, from: source, bytes: keysPerBatch * tables.keyBytes)
                try tables.lookup(tables.fused, keys: keys.address, count: keysPerBatch, runs: (0..<t).map { ($0, perTable) },
                                  runArrays: (fusedStarts.address, fusedMembers.address), output: denseInput.address,
                                  layout: .samplesByRun, keysPerSample: k, stream: stream, started: start, finished: looked)
            } else {
                // One input tensor per lookup layer, as the unfused model feeds them.
                for table in 0..<t {
                    let offset = table * perTable * tables.keyBytes
                    try stream.copy(to: keys.address + UInt64(offset), from: source + offset, bytes: perTable * tables.keyBytes)
                }
                for table in 0..<t {
                    try tables.lookup(tables.unfused[table], keys: keys.address + UInt64(table * perTable * tables.keyBytes),
                                      count: perTable, runs: [(0, perTable)], runArrays: (oneRunStarts.address, memberZero.address),
                                      output: tableOutputs.address + UInt64(table * perTable * dim * 4), layout: .keyOrder,
                                      keysPerSample: 1, stream: stream, started: table == 0 ? start : nil,
                                      finished: table == t - 1 ? looked : nil)
                }
                let quads = b * features / 4
                try concatKernel.launch(grid: (quads + 255) / 256, block: 256, stream: stream,
                                        tableOutputs.address, denseInput.address, Int32(t), Int32(b), Int32(k * dim))
            }
            try denseKernel.launch(grid: b, block: 1024, stream: stream,
                                   denseInput.address, Int32(features), weights.address, dense.bias, predictions.address)
            try stream.copy(to: UnsafeMutableRawPointer(hostPredictions.pointer), from: predictions.address, bytes: b * 4)
            try stream.synchronize()
            let total = (ContinuousClock.now - begin).microseconds
            // From the keys on the device to the rows written (a dynamic cache:
            // to its return, since it waits for its miss count), by events.
            let lookup = try looked.milliseconds(since: start) * 1000
            return (total, lookup, Array(hostPredictions.buffer))
        }

        var timings: [SeedDemo.Timing] = []
        var allPredictions: [[[Float]]] = []
        var firstInputs: [[Float]] = []
        for fused in [false, true] {
            var totals: [Double] = [], lookups: [Double] = [], predictionsOfRun: [[Float]] = []
            for index in 0..<batches.count {
                let result = try runBatch(index, fused: fused)
                predictionsOfRun.append(result.predictions)
                if index == 0 {
                    firstInputs.append(try denseInput.download())
                } else {
                    totals.append(result.total)
                    lookups.append(result.lookup)
                }
            }
            allPredictions.append(predictionsOfRun)
            timings.append(SeedDemo.Timing(elapsedSeconds: totals.reduce(0, +) / 1e6, p50Microseconds: percentile(totals, 0.5),
                                           p99Microseconds: percentile(totals, 0.99), lookupP50Microseconds: percentile(lookups, 0.5)))
        }
        let vectorsMatch = try SeedDemo.check(batches[0], denseInput: firstInputs[1], model: model, directory: directory)
            && firstInputs[0] == firstInputs[1]
        var result = SeedDemo.Result(device: "gpu (\(device.name), \(tables.cacheType.rawValue) cache)", unfused: timings[0],
                                     fused: timings[1], speedup: timings[0].elapsedSeconds / timings[1].elapsedSeconds,
                                     predictionsMatch: allPredictions[0] == allPredictions[1], vectorsMatchFiles: vectorsMatch,
                                     threads: 1, iterations: iterations)
        if model.vectorStorage != .fp32 {
            // Against the fp32 model on the CPU (whose dense head sums in another order: differences of a few ulps are that).
            result.predictionDifference = try SeedDemo.predictionDifference(allPredictions[1], batches: batches, model: model,
                                                                            directory: directory, threads: availableCores)
        }
        return result
    }
}
