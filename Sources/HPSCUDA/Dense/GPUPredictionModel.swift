public import HPS

/// The seed notebook's model on a GPU, as `PredictionModel` is on the CPU:
/// each sample's keys looked up through a session on the GPU straight into
/// the dense layer's input in device memory (sample, then table, then key:
/// one fused lookup in the sample-major layout), `Dense(1)` over it by the
/// dense kernel, and the predictions copied back through pinned memory.
/// The vectors never cross the bus.
///
/// ```swift
/// let server = try HierarchicalParameterServer(configuration: configuration, gpu: GPUCacheFactory())
/// let model = try GPUPredictionModel(session: try server.session(model: "8_table", device: 0),
///                                    dense: DenseLayer(inputs: 8 * 26 * 128, seed: 2023), keysPerSample: 26)
/// let (predictions, counts) = try model.predict(keys: keysPerTable, samples: 256)
/// ```
///
/// The predictions equal the CPU model's up to the order of the dense
/// layer's sum (float rounding); the dense input is the same, bit for bit.
///
/// Thread safety: `predict` may be called from any thread; calls take turns
/// on the model's device buffers (the lookups take turns on the caches anyway).
public final class GPUPredictionModel: Sendable {
    /// The session on a GPU whose tables are looked up; its tables share one vec size and one fusion group.
    public let session: LookupSession
    /// The dense layer: `tables × keysPerSample × vecSize` weights.
    public let dense: DenseLayer
    /// Keys per sample and table.
    public let keysPerSample: Int
    let kernels: GPUKernels
    let denseKernel: CUDAKernel
    let weights: DeviceBuffer<Float>
    let buffers: Locked<Buffers>

    /// A stream, and the dense input, the predictions and their pinned copy, grown to the largest batch seen.
    struct Buffers {
        var stream: CUDAStream
        var input: DeviceBuffer<Float>?
        var output: DeviceBuffer<Float>?
        var host: PinnedBuffer<Float>?
    }

    /// A model over `session`'s tables, on the session's GPU.
    /// - Throws: `LookupError.shape` when the tables' vec sizes differ, they
    ///   are not one fusion group, or the dense layer's width is not
    ///   `tables × keysPerSample × vecSize`; `.destination` for a session on
    ///   the CPU; `.device` when the GPU cannot take the layer.
    public init(session: LookupSession, dense: DenseLayer, keysPerSample: Int) throws(LookupError) {
        let sizes = Set(session.model.vecSizes)
        guard sizes.count == 1, let vecSize = sizes.first else {
            throw .shape(reason: "a prediction model needs tables of one vec size, but model \(session.model.name) has \(session.model.vecSizes)")
        }
        guard session.plan.groups.count == 1 else {
            throw .shape(reason: "a GPU prediction model looks its tables up as one fused group, but model \(session.model.name) is planned as \(session.plan.groups.count) groups; set fuse_embedding_table true")
        }
        let width = session.model.tableNames.count * keysPerSample * vecSize
        guard keysPerSample > 0, dense.weights.count == width else {
            throw .shape(reason: "the dense layer has \(dense.weights.count) weights but \(session.model.tableNames.count) tables × \(keysPerSample) keys × vec \(vecSize) give \(width) inputs")
        }
        guard let device = session.device,
              let kernels = session.groupCaches.lazy.compactMap({ ($0 as? any GPUResident)?.kernels }).first,
              kernels.device.index == device else {
            throw .destination(reason: "a GPU prediction model writes its lookups to device memory, so it needs a session on a GPU, but model \(session.model.name)'s session runs on the CPU")
        }
        self.session = session
        self.dense = dense
        self.keysPerSample = keysPerSample
        self.kernels = kernels
        do throws(CUDAError) {
            try kernels.device.makeCurrent()
            denseKernel = try kernels.dense()
            weights = try DeviceBuffer(device: kernels.device, copying: dense.weights)
            buffers = Locked(Buffers(stream: try CUDAStream(device: kernels.device)))
        } catch {
            throw .device(reason: "GPU \(device) could not take the dense layer of model \(session.model.name): \(error)")
        }
    }

    /// Floats per vector.
    public var vecSize: Int { session.model.vecSizes[0] }

    /// Predicts a batch into the caller's buffer (see `Predictor`).
    /// - Throws: for a wrong number of keys or predictions, what the lookup
    ///   refuses (too many keys, a key beyond 32 bits), or
    ///   `LookupError.device` when the GPU fails.
    public func predict(keys flat: UnsafeBufferPointer<Int64>, samples: Int,
                        into predictions: UnsafeMutableBufferPointer<Float>) throws(LookupError) -> LookupCounts {
        try checkBatch(keys: flat.count, samples: samples, predictions: predictions.count)
        let tables = session.model.tableNames.count, k = keysPerSample, features = tables * k * vecSize
        guard samples > 0 else { return LookupCounts(tables: tables, tiers: session.tierNames.count) }
        let device = kernels.device
        return try buffers.withLock { (buffers) throws(LookupError) -> LookupCounts in
            let input: DeviceBuffer<Float>, output: DeviceBuffer<Float>, host: PinnedBuffer<Float>
            do throws(CUDAError) {
                try device.makeCurrent()
                if let held = buffers.input, held.count >= samples * features { input = held } else {
                    buffers.input = nil
                    input = try DeviceBuffer(device: device, count: samples * features)
                    buffers.input = input
                }
                if let held = buffers.output, held.count >= samples { output = held } else {
                    output = try DeviceBuffer(device: device, count: samples)
                    buffers.output = output
                }
                if let held = buffers.host, held.count >= samples { host = held } else {
                    host = try PinnedBuffer(device: device, count: samples)
                    buffers.host = host
                }
            } catch {
                throw .device(reason: "GPU \(device.index) could not hold the dense input of \(samples) samples of model \(session.model.name): \(error)")
            }
            // One fused lookup into the dense input: table t's key j of sample s at row (s × tables + t) × k + j % k.
            let parts = (0..<tables).map { table in
                (table: table, keys: UnsafeBufferPointer(rebasing: flat[(table * samples * k)..<((table + 1) * samples * k)]))
            }
            let counts = try session.lookup(parts, into: .device(DevicePointer(device: device.index, address: input.address),
                                                                 count: samples * features),
                                            layout: .samplesByRun(keysPerSample: k))
            // The GPU caches finish their device work before a lookup returns, so this stream may read the input.
            do throws(CUDAError) {
                try device.makeCurrent()
                let block = max(32, min(1024, (features / 4 + 31) / 32 * 32))
                try denseKernel.launch(grid: samples, block: block, stream: buffers.stream,
                                       input.address, Int32(features), weights.address, dense.bias, output.address)
                try buffers.stream.copy(to: UnsafeMutableRawPointer(host.pointer), from: output.address, bytes: samples * 4)
                try buffers.stream.synchronize()
            } catch {
                throw .device(reason: "GPU \(device.index) failed running the dense layer of model \(session.model.name): \(error)")
            }
            _ = predictions.update(fromContentsOf: UnsafeBufferPointer(start: host.pointer, count: samples))
            return counts
        }
    }
}

/// The server serves a prediction head through `Predictor`, on the GPU as on the CPU.
extension GPUPredictionModel: Predictor {}
