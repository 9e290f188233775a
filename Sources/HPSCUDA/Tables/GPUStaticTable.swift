package import HPS

/// HugeCTR's static embedding cache: a whole (possibly fused) table in GPU
/// memory behind a GPU hash index, read-only, the fastest path.
///
/// The index is a ranked two-choice one (`GPUTableIndex`): 8-byte slots
/// that hold only keys, in buckets of four, a key in one of two buckets,
/// filled to at most `GPUTableIndex.maximumLoad`, with the vectors in slot
/// order; built on the host with the CPU's `KeyHash` and probed by the kernel
/// with the same function. Members of a fused table keep their keys apart as
/// on the CPU: the member is part of the hash and is kept per slot.
///
/// Rows are stored as the model's `vector_storage` says: quantized on the
/// host (`VectorCodec`) and decoded to float32 by the lookup kernel, with
/// the same arithmetic as the CPU tiers.
///
/// As the L1 cache of a session (`EmbeddingCache`, kind `gpu_static`) it
/// answers every key it holds and the member's default value for the others
/// (the table is the whole model: a key it lacks is in no tier).
///
/// ```swift
/// let table = try GPUStaticTable(kernels: kernels, dim: 128, members: [(keys, vectors)], defaults: [0],
///                                int64Keys: true, name: "hps_et.model.table0")
/// var hits = TierHits(tiers: 1, members: 1)
/// try table.lookup(CacheBatch(keys: keys, runs: runs), below: nil, defaults: defaults, hits: &hits)
/// ```
///
/// Thread safety: cache lookups may be called from any thread; they take
/// turns on the table's lookup state (one stream and its staging buffers).
/// The device-address lookup may run concurrently on different streams.
package final class GPUStaticTable: Sendable {
    /// Floats per vector.
    package let dim: Int
    /// Member tables.
    package let memberCount: Int
    /// Whether keys are uploaded as int64 (else as uint32).
    package let int64Keys: Bool
    /// How the rows are stored (`vector_storage`).
    package let storage: VectorStorage
    /// Distinct (member, key) pairs held.
    package let count: Int
    let capacity: Int
    /// The ranked index: slot keys, blocks (taken bits, rows before) and slot
    /// members (none for a table of one member).
    let slotKeys: DeviceBuffer<Int64>
    let blocks: DeviceBuffer<UInt64>
    let slotMembers: DeviceBuffer<UInt16>?
    /// The vectors: in device memory, or in mapped host memory for `uvm`.
    let vectors: Storage
    let defaults: DeviceBuffer<Float>
    let kernel: CUDAKernel
    let kernels: GPUKernels
    /// Names the table in errors, e.g. `hps_et.<model>.<group>`.
    package let name: String
    /// The stream, staging buffers and counters of cache lookups, made at the
    /// first one (a table that only serves as a uvm cache's source needs none).
    let lookupState = Locked(LookupState())

    struct LookupState {
        var stage: GPULookupStage?
        var statistics = CacheStatistics()
        /// Whether an update has given the tiers below a key this table does
        /// not hold: lookups must then ask them for the keys it misses.
        var unheldBelow = false
        /// Counts the misses of lookups that returned before their kernel ran
        /// (`lookupInStreamOrder`); folded into `statistics` when read.
        var streamOrderMisses: DeviceBuffer<UInt32>?
    }

    /// Where a table's vectors live.
    package enum Placement: Sendable {
        /// In device memory (`static`).
        case device
        /// In page-locked host memory the device reads over the bus (`uvm`),
        /// for tables larger than device memory; the index stays on the device.
        case mappedHost
    }

    /// The rows' memory: device or mapped host memory, float32 or quantized words.
    struct Storage: Sendable {
        /// Device address of the rows.
        let address: UInt64
        /// Bytes of device memory held (0 for mapped host memory).
        let deviceBytes: Int
        /// The buffer, kept alive with the table.
        let owner: any AnyObject & Sendable

        init<T>(_ rows: [T], placement: Placement, device: CUDADevice) throws(CUDAError) {
            switch placement {
            case .device:
                let buffer = try DeviceBuffer(device: device, copying: rows)
                (address, deviceBytes, owner) = (buffer.address, buffer.byteCount, buffer)
            case .mappedHost:
                let buffer = try MappedHostBuffer(device: device, copying: rows)
                (address, deviceBytes, owner) = (buffer.deviceAddress, 0, buffer)
            }
        }
    }

    /// Where the vectors live.
    package let placement: Placement

    /// Builds the table from its members' rows.
    /// - Parameters:
    ///   - members: per member, (n) keys and (n × dim) floats; a repeated key keeps its last row.
    ///   - defaults: per member, the value of a missing key's elements.
    ///   - placement: device memory, or mapped host memory.
    ///   - storage: how rows are stored; quantized here, on the host.
    ///   - name: names the table in errors.
    /// - Throws: `CUDAError.storage` for an element `storage` cannot hold.
    package init(kernels: GPUKernels, dim: Int, members: [(keys: [Int64], vectors: [Float])], defaults: [Float],
                int64Keys: Bool, placement: Placement = .device, storage: VectorStorage = .fp32,
                name: String = "a GPU static table") throws(CUDAError) {
        self.placement = placement
        self.storage = storage
        self.name = name
        self.dim = dim
        self.memberCount = members.count
        self.int64Keys = int64Keys
        self.kernels = kernels
        let index = try GPUTableIndex(members: members, dim: dim, load: kernels.tuning.indexLoad, name: name)
        capacity = index.capacity
        count = index.count
        let device = kernels.device
        slotKeys = try DeviceBuffer(device: device, copying: index.slotKeys)
        blocks = try DeviceBuffer(device: device, copying: index.blocks)
        slotMembers = index.slotMembers.isEmpty ? nil : try DeviceBuffer(device: device, copying: index.slotMembers)
        if storage == .fp32 {
            vectors = try Storage(index.vectors, placement: placement, device: device)
        } else {
            vectors = try Storage(try Self.encode(index.vectors, dim: dim, storage: storage, index: index, name: name),
                                  placement: placement, device: device)
        }
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        kernel = try kernels.lookup(dim: dim, int64Keys: int64Keys, storage: storage)
    }

    /// Rows in slot order (n × dim floats) as stored rows of `storage`, in
    /// 32-bit words (a stored row is a multiple of 4 bytes).
    static func encode(_ rows: [Float], dim: Int, storage: VectorStorage, index: GPUTableIndex,
                       name: String) throws(CUDAError) -> [UInt32] {
        let codec = VectorCodec(storage: storage, dim: dim)
        let count = dim == 0 ? 0 : rows.count / dim
        let encoded = try rows.withUnsafeBufferPointer { (source) throws(CUDAError) in
            try EncodedRows.forDevice(source.baseAddress!, count: count, codec: codec, table: name) { index.key(ofRow: $0) }
        }
        return [UInt32](unsafeUninitializedCapacity: encoded.byteCount / 4) { words, initialized in
            UnsafeMutableRawPointer(words.baseAddress!).copyMemory(from: encoded.base, byteCount: encoded.byteCount)
            initialized = encoded.byteCount / 4
        }
    }

    /// The module of this table's kernels (its vec size, key type and storage).
    func module() throws(CUDAError) -> CUDAModule {
        try kernels.module(dim: dim, int64Keys: int64Keys, storage: storage)
    }

    /// The kernel that writes rows read from the tiers below into an output.
    func scatterKernel() throws(CUDAError) -> CUDAKernel {
        try kernels.module(dim: dim, int64Keys: int64Keys).kernel("hps_scatter_rows")
    }

    /// Device address of the vectors (rows of `storage.rowBytes(dim:)` bytes).
    var vectorsAddress: UInt64 { vectors.address }

    /// Bytes of device memory held.
    package var deviceBytes: Int {
        slotKeys.byteCount + blocks.byteCount + (slotMembers?.byteCount ?? 0) + vectors.deviceBytes + defaults.byteCount
    }

    /// Device address of the slot members, 0 for a table of one member.
    var slotMembersAddress: UInt64 { slotMembers?.address ?? 0 }

    /// How a lookup's output rows are laid out.
    package enum Layout: Int32, Sendable {
        /// Row i for key i.
        case keyOrder = 0
        /// The concatenated input of a dense layer: run r's key j of sample
        /// s = j / keysPerSample goes to row (s × runs + r) × keysPerSample + j % keysPerSample.
        case samplesByRun = 1
    }

    /// The element type of a device-address lookup's output.
    package enum OutputElement: Sendable {
        /// float32 (every lookup path).
        case float32
        /// float16, round to nearest even: half the bytes written, for
        /// callers that take fp16 rows (a quantized table's values are exact
        /// in fp16 only for fp16 and fp8 storage).
        case float16
    }

    /// Looks up `count` keys already on the device, in one launch.
    /// - Parameters:
    ///   - keys: device address of `count` keys (int64 or uint32, as the table was built).
    ///   - runStarts: device address of (runs + 1) Int32 offsets into the keys.
    ///   - runMembers: device address of (runs) Int32 member indices.
    ///   - output: device address of `count × dim` elements of `element`.
    ///   - misses: device address of one UInt32 that counts missing keys, or 0;
    ///     with `hostMisses`, a `GPUMissCounter`'s three words.
    ///   - missIndex: device address of `count` Int32 that receive the missing keys' indices, or 0.
    ///   - hostMisses: a `GPUMissCounter`'s mapped word, where the count is published, or 0.
    package func lookup(keys: UInt64, count: Int, runStarts: UInt64, runMembers: UInt64, runs: Int,
                output: UInt64, element: OutputElement = .float32, layout: Layout = .keyOrder, keysPerSample: Int = 1,
                misses: UInt64 = 0, missIndex: UInt64 = 0, hostMisses: UInt64 = 0, stream: CUDAStream) throws(CUDAError) {
        let kernel = element == .float32
            ? self.kernel
            : try kernels.module(dim: dim, int64Keys: int64Keys, storage: storage, halfOutput: true).kernel("hps_lookup")
        try LookupLaunch(keys: keys, count: count, runStarts: runStarts, runMembers: runMembers, runs: runs,
                         slots: slotKeys.address, capacity: capacity, rowBits: 32, vectors: vectors.address,
                         defaults: defaults.address, output: output, layout: layout, keysPerSample: keysPerSample,
                         misses: misses, missIndex: missIndex, rankBlocks: blocks.address, slotMembers: slotMembersAddress,
                         hostMisses: hostMisses)
            .launch(kernel, kernels: kernels, stream: stream)
    }
}

extension GPUStaticTable: EmbeddingCache {
    /// `gpu_static`.
    package var kind: String { "gpu_static" }
    /// The GPU's index.
    package var device: Int? { kernels.device.index }
    /// Floats per vector.
    package var vecSize: Int { dim }
    /// Keys looked up and answered, and the time of the lookups' device work;
    /// a snapshot (it waits for the lookups queued in stream order, to count
    /// their misses).
    package var statistics: CacheStatistics {
        lookupState.withLock { state in
            if let counter = state.streamOrderMisses, let stage = state.stage {
                do throws(CUDAError) {
                    try kernels.device.makeCurrent()
                    try stage.stream.synchronize()
                    let misses = Int(try counter.download()[0])
                    try counter.fill32(0)
                    state.statistics.hits -= misses
                } catch {
                    // The counter stays as it is; the next snapshot tries again.
                }
            }
            return state.statistics
        }
    }

    /// Looks up a group's keys: one copy of the keys and run arrays to the
    /// device, one launch, and for a host destination one copy of the rows
    /// back (then copied to each run's output); for a device destination the
    /// rows are written there (`batch.layout`) and only the miss count comes back.
    /// The table holds every key of the model files; a key it lacks (one an
    /// online update added) is read from `below` and counts for the tier
    /// that held it, else it gets the member's default and counts as `missing`.
    /// - Throws: `LookupError.device` when the driver fails, `.destination`
    ///   for memory of another GPU or runs the layout does not fit.
    package func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                       hits: inout TierHits) throws(LookupError) {
        let n = batch.count
        guard n > 0 else { return }
        let index = kernels.device.index
        let output = try GPUOutput(batch, device: index, what: name)
        try lookupState.withLock { (state) throws(LookupError) in
            do throws(CUDAError) {
                try kernels.device.makeCurrent()
                let start = ContinuousClock.now
                if state.stage == nil { state.stage = try GPULookupStage(device: kernels.device) }
                let stage = state.stage!
                let staged = try stage.stage(keys: batch.deviceKeys == nil ? batch.keys : nil, count: n, int64Keys: int64Keys,
                                             runs: batch.runs.lazy.map { (member: $0.member, count: $0.count) },
                                             rowBytes: output.device == nil ? n * dim * 4 : 0)
                let keys = try batch.deviceKeys.map { (keys) throws(CUDAError) in
                    try stage.deviceKeys(keys, after: batch.keysStream, int64Keys: int64Keys)
                } ?? staged.keys
                if batch.deviceKeys != nil, let device = output.device, !state.unheldBelow {
                    // Keys and rows on the device, and no tier below holds a key
                    // this table lacks: a miss is a default the kernel writes, so
                    // nothing needs the host; the caller's stream waits for the rows.
                    if state.streamOrderMisses == nil {
                        state.streamOrderMisses = try DeviceBuffer<UInt32>(device: kernels.device, copying: [0])
                    }
                    try lookup(keys: keys, count: n, runStarts: staged.runStarts, runMembers: staged.runMembers,
                               runs: batch.runs.count, output: device.address, layout: output.layout,
                               keysPerSample: output.keysPerSample, misses: state.streamOrderMisses!.address,
                               stream: stage.stream)
                    try stage.finishInStreamOrder(caller: batch.keysStream)
                    hits.addAnswered(batch.runs)
                    state.statistics.keys += n
                    state.statistics.hits += n
                    state.statistics.deviceNanoseconds += (ContinuousClock.now - start).nanoseconds
                    return
                }
                try lookup(keys: keys, count: n, runStarts: staged.runStarts, runMembers: staged.runMembers,
                           runs: batch.runs.count, output: output.device?.address ?? staged.rows, layout: output.layout,
                           keysPerSample: output.keysPerSample, misses: staged.counter.counting, missIndex: staged.missIndex,
                           hostMisses: staged.counter.hostAddress, stream: stage.stream)
                if output.device == nil { try stage.downloadRows(staged) }
                try stage.stream.synchronize()
                let misses = staged.misses
                hits.addAnswered(batch.runs)
                if misses > 0, let below {
                    // Keys the table was not built with: an online update may have added them below.
                    let indices = try stage.missIndices(staged, misses: misses)
                    let hostKeys = batch.deviceKeys == nil ? nil : try stage.hostKeys(at: keys, count: n, int64Keys: int64Keys)
                    let unheld = UnheldKeys(indices: indices, batch: batch, hostKeys: hostKeys, layout: output.layout,
                                            keysPerSample: output.keysPerSample)
                    let fromBelow = try unheld.fill(from: below, dim: dim, defaults: Array(defaults), memberCount: memberCount,
                                                    output: output.device?.address ?? staged.rows, stage: stage,
                                                    scatter: try scatterKernel())
                    for member in 0..<memberCount { hits.moveFromCache(member: member, answeredBelow: fromBelow) }
                    if output.device == nil { try stage.downloadRows(staged) }
                    try stage.stream.synchronize()
                } else if misses > 0 {
                    let members = Set(batch.runs.map(\.member))
                    if members.count == 1 {
                        hits.moveFromCache(member: members.first!, count: misses, to: nil)
                    } else {
                        // Which members missed: only the keys' indices tell (a miss here is a key of no tier, which is rare).
                        let indices = try stage.missIndices(staged, misses: misses)
                        for (member, count) in missesPerMember(indices, runs: batch.runs, members: memberCount).enumerated() {
                            hits.moveFromCache(member: member, count: count, to: nil)
                        }
                    }
                }
                state.statistics.keys += n
                state.statistics.hits += n - misses
                state.statistics.deviceNanoseconds += (ContinuousClock.now - start).nanoseconds
                if output.device == nil { staged.copyRows(to: batch.runs, vecSize: dim) }
            } catch {
                throw .gpu(error, device: index, what: name)
            }
        }
    }
}
