package import HPS

/// HugeCTR's dynamic embedding cache on the GPU: `capacity` rows of a
/// (possibly fused) table in GPU memory, in front of a source of misses,
/// least recently used rows evicted first. The source is the tiers below
/// (the CPU stores: the `dynamic` cache type, kind `gpu_dynamic`), or the
/// whole table in mapped host memory (`uvm`, kind `gpu_uvm`), whose rows the
/// GPU copies over the bus itself, so that a miss never moves a vector
/// through host code.
///
/// A lookup counts its misses. When the hit rate is under
/// `hitRateThreshold`, the missing vectors are read from the tiers below,
/// written into the output and inserted before the call returns; otherwise
/// they are answered with the default value now, and read from the tiers
/// below and inserted afterwards (HPS's semantics): by the cache's insert
/// work (`backgroundWork`) when its owner runs it, else by the next lookup
/// before its own. A uvm cache always answers its misses before returning:
/// the GPU reads them itself. With `refreshInterval` > 0, the refresh work
/// re-reads every cached row from the tiers below at that interval.
///
/// Everything about the rows lives on the GPU: the index (open addressing
/// over twice as many slots as rows, evicted keys left as tombstones until
/// the index is rebuilt), each row's key, member, slot and last use, and
/// the stack of free rows. Kernels plan the misses, insert them (a key
/// missed twice in one batch is inserted once), and pick the least recently
/// used rows to evict; the host only reads the tiers below for a `dynamic`
/// cache. Unlike HugeCTR's set-associative cache, a cache whose capacity is
/// at least the table's key count holds every key once it has been seen.
///
/// ```swift
/// let cache = try GPUDynamicCache(kernels: kernels, dim: 128, capacity: 1 << 20, members: 1, source: .tier(chain),
///                                 defaults: [0], hitRateThreshold: 0.9, int64Keys: true, name: "hps_et.model.table0")
/// var hits = TierHits(tiers: 1 + chain.tiers.count, members: 1)
/// try cache.lookup(CacheBatch(keys: keys, runs: runs), below: chain, defaults: defaults, hits: &hits)
/// ```
///
/// Thread safety: lookups, inserts, refreshes and statistics may be called
/// from any thread; they take turns on one lock.
package final class GPUDynamicCache: EmbeddingCache, @unchecked Sendable {
    // @unchecked Sendable: the stored `var`s below (epoch … insertSignals),
    // the stage's stream and staging buffers, and the contents of the device
    // buffers are read and written only holding `lock`, a pthread lock the
    // compiler cannot see; every other stored property is immutable and Sendable.

    /// Floats per vector.
    package let dim: Int
    /// Rows the cache holds.
    package let capacity: Int
    /// Member tables.
    package let memberCount: Int
    /// Whether keys are uploaded as int64 (else uint32).
    package let int64Keys: Bool
    /// Below this hit rate, misses are filled before the lookup returns.
    package let hitRateThreshold: Double
    /// How the cache stores its rows, as the tiers below (or a uvm cache's
    /// table) store them (`vector_storage`): each row is
    /// `storage.rowBytes(dim:)` bytes, decoded to float32 by the lookup. A
    /// miss read from the tiers below comes back decoded and is encoded
    /// again on the host so that it decodes to the same floats
    /// (`VectorCodec.encodeDecoded`); an update is quantized as the tiers
    /// quantize it; a uvm cache copies its table's stored rows.
    package let storage: VectorStorage
    /// Where the misses are read from.
    package let source: MissSource
    /// Names the cache in errors and logs, e.g. `hps_et.<model>.<group>`.
    package let name: String
    /// Seconds between refreshes from the tiers below (`refresh_interval`; 0: none).
    package let refreshInterval: Double
    /// Seconds before the first refresh (`refresh_delay`).
    package let refreshDelay: Double

    /// Where a cache's misses are read from.
    package enum MissSource: Sendable {
        /// The tiers below on the CPU (`dynamic`), with the same member numbering.
        case tier(any EmbeddingStoreTable)
        /// The whole table in mapped host memory (`uvm`): misses are copied
        /// by the GPU from its rows, always before the lookup returns, since
        /// that costs no host round trip for the vectors.
        case mappedTable(GPUStaticTable)
    }

    package let kernels: GPUKernels
    let cuda: CUDADevice
    /// The tiers below as one chain (a `.tier` source), which counts where each miss was found.
    let lower: TierChain?
    let lock = ReadWriteLock()
    /// The stream of every lookup, insert and refresh, and the staging buffers of lookups.
    let stage: GPULookupStage

    // Device state: the index, the rows and what the kernels know of them.
    package let slotCapacity: Int
    package let rowBits: Int
    package let slots: DeviceBuffer<UInt64>
    package let vectors: DeviceBuffer<Float>
    package let stamps: DeviceBuffer<UInt32>
    let rowKeys: DeviceBuffer<Int64>
    let rowMembers: DeviceBuffer<Int32>
    let rowSlots: DeviceBuffer<UInt32>
    let freeRows: DeviceBuffer<Int32>
    /// [0] unused (a lookup counts its misses in its stage's `GPUMissCounter`), [1] free
    /// rows, [2] keys inserted, [3], [4] the eviction's counters, [5] the
    /// count of a host-made plan, [6] keys an insert found no free row for.
    let counters: DeviceBuffer<UInt32>
    package let defaults: DeviceBuffer<Float>
    let hostDefaults: [Float]
    package let lookupKernel: CUDAKernel
    let missPlan: CUDAKernel
    let probeRows: CUDAKernel
    let fillRows: CUDAKernel
    let cacheInsert: CUDAKernel
    let cacheUpdate: CUDAKernel
    let cacheRehash: CUDAKernel
    /// Writes float32 rows into an output (a uvm cache's misses found only below).
    let scatterRows: CUDAKernel
    /// Writes stored rows into the cache's (a refresh).
    let scatterStoredRows: CUDAKernel
    let stampHistogram: CUDAKernel
    let stampSelect: CUDAKernel
    let stampRestart: CUDAKernel

    // Guarded by `lock`.
    var epoch: UInt32 = 1
    /// No held row's stamp is older than this epoch (rows older were evicted).
    var stampFloor: UInt32 = 0
    /// Evicted keys' slots since the index was last rebuilt.
    var tombstones = 0
    /// Misses answered with the default value whose insert has not run yet:
    /// the insert work applies them, or the next lookup first if it takes
    /// the lock sooner (so that a busy caller cannot starve them).
    var pendingInserts: [(keys: [Int64], members: [Int32])] = []
    /// The running insert works' wake-ups, by registration.
    var insertSignals: [Int: AsyncStream<Void>.Continuation] = [:]
    var nextInsertSignal = 0
    /// Whether the last lookup filled misses before returning: then a host
    /// destination's rows are fetched after the fill, not with the miss count.
    var expectFill = false
    var counts = Statistics()

    /// What the cache has done, in more detail than `CacheStatistics`.
    package struct Statistics: Sendable, Equatable {
        /// Keys looked up.
        package var keys = 0
        /// Keys found in the cache.
        package var hits = 0
        /// Keys inserted (after misses, or by a prefill).
        package var inserts = 0
        /// Lookups whose misses were filled before returning.
        package var synchronousFills = 0
        /// Lookups whose misses were inserted afterwards.
        package var asynchronousInserts = 0
        /// Rows evicted to make room.
        package var evictions = 0
        /// Times the index was rebuilt to drop the evicted keys' tombstones.
        package var rebuilds = 0
        /// Refreshes from the tiers below.
        package var refreshes = 0
        /// Refreshes that failed (the rows keep their vectors until the next).
        package var failedRefreshes = 0
        /// The last failed refresh's error.
        package var lastRefreshError: String?
        /// Inserts after a lookup that failed (the keys stay missing; the
        /// next lookup of them tries again).
        package var failedInserts = 0
        /// The last failed insert's error.
        package var lastInsertError: String?
        /// Nanoseconds of lookups, from the keys' copy to the rows' return
        /// (with the misses they filled).
        package var deviceNanoseconds: UInt64 = 0
        /// Where the time of misses goes, in nanoseconds: handling them in
        /// the lookup (after the kernel), of which reading the tiers below
        /// and choosing evictions (also when inserting afterwards).
        package var missNanoseconds: UInt64 = 0
        /// Reading misses from the tiers below.
        package var fetchNanoseconds: UInt64 = 0
        /// Choosing and freeing the rows to evict.
        package var evictNanoseconds: UInt64 = 0

        /// hits / keys.
        package var hitRate: Double { keys == 0 ? 0 : Double(hits) / Double(keys) }
    }

    /// An empty cache.
    /// - Parameters:
    ///   - capacity: rows; `gpucacheper` × the table's keys.
    ///   - lower: the tiers misses are read from (the same member numbering).
    ///   - defaults: per member, the value of a key found nowhere.
    ///   - storage: how `lower` stores its rows (`vector_storage`), and so the cache.
    package convenience init(kernels: GPUKernels, dim: Int, capacity: Int, members: Int, lower: any EmbeddingStoreTable,
                            defaults: [Float], hitRateThreshold: Double, int64Keys: Bool,
                            storage: VectorStorage = .fp32) throws(CUDAError) {
        try self.init(kernels: kernels, dim: dim, capacity: capacity, members: members, source: .tier(lower),
                      defaults: defaults, hitRateThreshold: hitRateThreshold, int64Keys: int64Keys, storage: storage)
    }

    /// An empty cache in front of `source`.
    /// - Parameters:
    ///   - capacity: rows; `gpucacheper` × the table's keys.
    ///   - source: the tiers below, or the table in mapped host memory (same members, vec size and key type).
    ///   - defaults: per member, the value of a key found nowhere.
    ///   - name: names the cache in errors and logs.
    ///   - refreshInterval: seconds between refreshes by the refresh work (0: no refresh work).
    ///   - refreshDelay: seconds before the first refresh.
    ///   - storage: how the tiers below store rows, and so the cache (a uvm cache takes its table's).
    package init(kernels: GPUKernels, dim: Int, capacity: Int, members: Int, source: MissSource,
                defaults: [Float], hitRateThreshold: Double, int64Keys: Bool, name: String = "a GPU cache",
                refreshInterval: Double = 0, refreshDelay: Double = 0, storage: VectorStorage = .fp32) throws(CUDAError) {
        if case .mappedTable(let table) = source { self.storage = table.storage } else { self.storage = storage }
        switch source {
        case .tier(let lower):
            guard lower.vecSize == dim, lower.memberCount == members else {
                throw .layoutMismatch(table: name, expected: "a tier below of vec size \(dim) and \(members) member(s)",
                                      found: "\(lower.tag) of vec size \(lower.vecSize) and \(lower.memberCount) member(s)")
            }
            self.lower = lower as? TierChain ?? TierChain(tiers: [lower])
        case .mappedTable(let table):
            guard table.dim == dim, table.memberCount == members, table.int64Keys == int64Keys, table.placement == .mappedHost else {
                throw .layoutMismatch(
                    table: name,
                    expected: "a table in mapped host memory of vec size \(dim), \(members) member(s) and \(int64Keys ? "int64" : "int32") keys",
                    found: "one of vec size \(table.dim) and \(table.memberCount) member(s)\(table.placement == .device ? ", in device memory" : "")")
            }
            self.lower = nil
        }
        let device = kernels.device
        self.kernels = kernels
        self.cuda = device
        self.dim = dim
        self.capacity = max(1, capacity)
        self.memberCount = members
        self.int64Keys = int64Keys
        self.hitRateThreshold = hitRateThreshold
        self.source = source
        self.name = name
        self.refreshInterval = refreshInterval
        self.refreshDelay = refreshDelay
        let memberBits = members <= 1 ? 0 : (Int.bitWidth - (members - 1).leadingZeroBitCount)
        rowBits = 32 - memberBits
        // Refs are row + 1 in rowBits bits; the top two values of a 32-bit ref mark busy and deleted slots.
        guard self.capacity < (1 << rowBits) - 3 else {
            throw .capacity(table: name, what: "rows with \(members) members", limit: (1 << rowBits) - 4, requested: self.capacity)
        }
        slotCapacity = 2 * self.capacity + 16
        stage = try GPULookupStage(device: device)
        slots = try DeviceBuffer(device: device, count: slotCapacity * 2)
        try slots.fill32(0)
        // Stored rows of storage.rowBytes(dim:) bytes (a multiple of 4).
        vectors = try DeviceBuffer(device: device, count: self.capacity * self.storage.rowBytes(dim: dim) / 4)
        stamps = try DeviceBuffer(device: device, count: self.capacity)
        try stamps.fill32(UInt32.max)  // every row free (HPS_FREE_ROW)
        rowKeys = try DeviceBuffer(device: device, count: self.capacity)
        rowMembers = try DeviceBuffer(device: device, count: self.capacity)
        rowSlots = try DeviceBuffer(device: device, count: self.capacity)
        freeRows = try DeviceBuffer(device: device, copying: (0..<Int32(self.capacity)).map { $0 })
        counters = try DeviceBuffer(device: device, copying: [0, UInt32(self.capacity), 0, 0, 0, 0, 0, 0])
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        hostDefaults = defaults
        // One module for the cache's rows and its source's: both stored as `storage` says.
        let module = try kernels.module(dim: dim, int64Keys: int64Keys, storage: self.storage)
        lookupKernel = try module.kernel("hps_lookup")
        missPlan = try module.kernel("hps_miss_plan")
        probeRows = try module.kernel("hps_probe_rows")
        fillRows = try module.kernel("hps_fill_rows")
        cacheInsert = try module.kernel("hps_cache_insert")
        cacheUpdate = try module.kernel("hps_cache_update")
        cacheRehash = try module.kernel("hps_cache_rehash")
        scatterRows = try module.kernel("hps_scatter_rows")
        scatterStoredRows = try module.kernel("hps_scatter_stored_rows")
        stampHistogram = try module.kernel("hps_stamp_histogram")
        stampSelect = try module.kernel("hps_stamp_select")
        stampRestart = try module.kernel("hps_stamp_restart")
    }

    /// The stream all of the cache's device work runs on, in order.
    package var stream: CUDAStream { stage.stream }

    /// Keys held (read from the device; 0 if it cannot be read).
    package var count: Int {
        lock.withWriteLock {
            guard (try? cuda.makeCurrent()) != nil else { return 0 }
            return (try? freeRowCount()).map { capacity - $0 } ?? 0
        }
    }

    /// What the cache has done since it was made; a snapshot taken under its lock.
    package var detailedStatistics: Statistics { lock.withReadLock { counts } }

    /// A device scratch buffer of at least `bytes` bytes, kept between calls.
    func scratchBuffer(_ name: String, bytes: Int) throws(CUDAError) -> DeviceBuffer<UInt8> {
        try stage.scratch.buffer(name, bytes: bytes)
    }

    // MARK: The L1 cache of a session

    /// `gpu_uvm` for a table in mapped host memory behind the cache, else `gpu_dynamic`.
    package var kind: String {
        if case .mappedTable = source { return "gpu_uvm" }
        return "gpu_dynamic"
    }

    /// The GPU's index.
    package var device: Int? { cuda.index }

    /// Floats per vector.
    package var vecSize: Int { dim }

    /// What the cache has done since it was made; a snapshot taken under its lock.
    package var statistics: CacheStatistics {
        lock.withReadLock {
            var statistics = CacheStatistics()
            statistics.keys = counts.keys
            statistics.hits = counts.hits
            statistics.inserts = counts.inserts
            statistics.evictions = counts.evictions
            statistics.refreshes = counts.refreshes
            statistics.failedInserts = counts.failedInserts
            statistics.deviceNanoseconds = counts.deviceNanoseconds
            return statistics
        }
    }

    /// The insert work (a `dynamic` cache: inserts the misses answered with
    /// the default as soon as they are pending) and, with `refreshInterval` >
    /// 0, the refresh work. Both do blocking device work and read the tiers
    /// below between their waits: their owner should run them where blocking
    /// is allowed. A uvm cache has none.
    package var backgroundWork: [any BackgroundWork] {
        guard lower != nil else { return [] }
        var work: [any BackgroundWork] = [GPUCacheInsertWork(cache: self)]
        if refreshInterval > 0 {
            work.append(GPUCacheRefreshWork(cache: self, interval: refreshInterval, delay: refreshDelay))
        }
        return work
    }

    /// Looks up a group's keys: the keys and run arrays go to the device in
    /// one copy from pinned memory, one launch finds the hits (and writes the
    /// defaults for the misses) and publishes the miss count in mapped host
    /// memory, and for a host destination the rows come back in one copy
    /// (then copied to each run's output). Misses are then filled and
    /// inserted, or inserted later, as `hitRateThreshold` says.
    ///
    /// The misses are read from the tiers the cache was made with (`below`
    /// is the same tiers, as the session passes them; it is not asked).
    /// Hits count for tier 0; misses filled from the tiers below count for
    /// the tier that held them (1…); misses answered with the default (found
    /// nowhere, or to be inserted later) count as `missing`; a uvm cache's
    /// misses found in its mapped table count for tier 0.
    /// - Throws: `LookupError.device` when the driver fails, `.destination`
    ///   for memory of another GPU or runs the layout does not fit.
    package func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                       hits: inout TierHits) throws(LookupError) {
        let n = batch.count
        guard n > 0 else { return }
        let index = cuda.index
        let output = try GPUOutput(batch, device: index, what: name)
        lock.lockWrite()
        defer { lock.unlock() }
        do throws(CUDAError) {
            try cuda.makeCurrent()
            applyPendingLocked()
            let start = ContinuousClock.now
            let hostRows = output.device == nil
            let staged = try stage.stage(keys: batch.deviceKeys == nil ? batch.keys : nil, count: n, int64Keys: int64Keys,
                                         runs: batch.runs.lazy.map { (member: $0.member, count: $0.count) },
                                         rowBytes: hostRows ? n * dim * 4 : 0)
            // Keys on the device are read there; the misses' keys come back with the miss plan.
            let keys = try batch.deviceKeys.map { (keys) throws(CUDAError) in
                try stage.deviceKeys(keys, after: batch.keysStream, int64Keys: int64Keys)
            } ?? staged.keys
            let outcome = try lookupLocked(staged, keys: keys, output: output.device?.address ?? staged.rows,
                                           layout: output.layout, keysPerSample: output.keysPerSample, hostRows: hostRows,
                                           below: below)
            counts.deviceNanoseconds += (ContinuousClock.now - start).nanoseconds
            hits.addAnswered(batch.runs)
            for member in 0..<memberCount where outcome.missed[member] > 0 {
                if let fromBelow = outcome.below {
                    hits.moveFromCache(member: member, answeredBelow: fromBelow)
                } else if let found = outcome.foundInTable {
                    hits.moveFromCache(member: member, count: outcome.missed[member] - found[member], to: nil)
                } else {
                    hits.moveFromCache(member: member, count: outcome.missed[member], to: nil)
                }
            }
            if hostRows { staged.copyRows(to: batch.runs, vecSize: dim) }
        } catch {
            throw .gpu(error, device: index, what: name)
        }
    }

    /// What one lookup did.
    package struct LookupReport: Sendable, Equatable {
        /// Keys looked up.
        package var keys: Int
        /// Keys found in the cache.
        package var hits: Int
        /// Whether the misses were filled before returning (else they hold
        /// the default value and are being inserted).
        package var filled: Bool
    }

    /// Looks up keys already on the device (int64 or uint32, as the cache was
    /// made) into a device output (the demo's and the benchmarks' path, whose
    /// keys are on the device already).
    /// - Parameters:
    ///   - deviceKeys: device address of n keys, run after run.
    ///   - runs: (member, count) per run; the counts sum to n.
    ///   - output: device address of n × dim floats, laid out by `layout`.
    ///   - keysWritten: an event recorded after the work that writes the keys
    ///     (on the caller's stream), which the cache's stream waits for; nil
    ///     when that work is done already. Waiting on the device, not the host,
    ///     lets the cache stage its run arrays while the keys are still copied.
    package func lookup(deviceKeys: UInt64, count n: Int, runs: [(member: Int, count: Int)], output: UInt64,
                layout: GPUStaticTable.Layout = .keyOrder, keysPerSample: Int = 1,
                after keysWritten: CUDAEvent? = nil) throws(CUDAError) -> LookupReport {
        guard n > 0 else { return LookupReport(keys: 0, hits: 0, filled: true) }
        lock.lockWrite()
        defer { lock.unlock() }
        try cuda.makeCurrent()
        applyPendingLocked()
        let start = ContinuousClock.now
        let staged = try stage.stage(keys: nil, count: n, int64Keys: int64Keys, runs: runs, rowBytes: 0)
        if let keysWritten { try stream.wait(for: keysWritten) }
        let outcome = try lookupLocked(staged, keys: deviceKeys, output: output, layout: layout,
                                       keysPerSample: keysPerSample, hostRows: false)
        counts.deviceNanoseconds += (ContinuousClock.now - start).nanoseconds
        return LookupReport(keys: n, hits: n - outcome.misses, filled: outcome.filled)
    }

    /// Where one lookup's misses were answered.
    struct Outcome {
        /// Keys missed.
        var misses = 0
        /// Whether they were filled before returning.
        var filled = true
        /// Per member, the keys missed.
        var missed: [Int]
        /// Read from the tiers below (a `dynamic` cache's misses, or the misses
        /// a uvm cache's mapped table does not hold): per tier and member, the
        /// keys each answered, and the keys none holds.
        var below: TierHits?
        /// uvm: per member, the missed keys the mapped table holds.
        var foundInTable: [Int]?
    }

    /// The lookup of staged run arrays (and keys, unless `deviceKeys` is
    /// elsewhere) into `output`; entered holding the lock, with the device current.
    ///
    /// Compared with the earlier shapes (a synchronize before the upload, the
    /// run arrays and the zeroed miss counter each in a call of their own,
    /// and the counters read by a blocking copy to pageable memory; later a
    /// zeroed counter in every upload and the count copied back), each step
    /// here is one the stream orders, and a lookup of device keys at hit rate
    /// 1.0 with the runs of the last one is one launch and one synchronize:
    /// - no leading synchronize: the staged buffers are reused only by later
    ///   work on the same stream, and every call ends by synchronizing it, so
    ///   the pinned buffer is free when the next call writes it;
    /// - at most one upload: keys, run starts and run members sit together in
    ///   one pinned buffer, and runs already on the device are not sent again
    ///   (`GPULookupStage.stage`);
    /// - no copy of the miss count: the kernel's last warp writes it into
    ///   mapped host memory and zeroes the counter for the next lookup
    ///   (`GPUMissCounter`); a host destination's rows come back in one copy,
    ///   then one synchronize; the free-row count, which only a fill needs, is
    ///   read on the miss path alone.
    func lookupLocked(_ staged: StagedLookup, keys deviceKeys: UInt64, output: UInt64, layout: GPUStaticTable.Layout,
                      keysPerSample: Int, hostRows: Bool, below: TierChain? = nil) throws(CUDAError) -> Outcome {
        let n = staged.count
        try nextEpoch()
        try LookupLaunch(keys: deviceKeys, count: n, runStarts: staged.runStarts, runMembers: staged.runMembers,
                         runs: staged.runs, slots: slots.address, capacity: slotCapacity, rowBits: rowBits,
                         vectors: vectors.address, defaults: defaults.address, output: output, layout: layout,
                         keysPerSample: keysPerSample, misses: staged.counter.counting, stamps: stamps.address, epoch: epoch,
                         missIndex: staged.missIndex, hostMisses: staged.counter.hostAddress)
            .launch(lookupKernel, kernels: kernels, stream: stream)
        // A host destination's rows come back before the miss count is
        // known, unless the last lookup filled misses (then this one likely
        // will too, and the rows are fetched once, after the fill).
        let rowsWithHead = hostRows && !expectFill
        if rowsWithHead { try stage.downloadRows(staged) }
        try stream.synchronize()
        let misses = staged.misses
        counts.keys += n
        counts.hits += n - misses
        var outcome = Outcome(misses: misses, missed: [Int](repeating: 0, count: memberCount))
        guard misses > 0 else {
            expectFill = false
            if hostRows && !rowsWithHead {
                try stage.downloadRows(staged)
                try stream.synchronize()
            }
            return outcome
        }
        let missStart = ContinuousClock.now
        defer { counts.missNanoseconds += (ContinuousClock.now - missStart).nanoseconds }

        // The misses' keys, members and output rows, planned on the device.
        let plan = try planBuffers(misses)
        try missPlan.launch(grid: (misses + 255) / 256, block: 256, stream: stream,
            deviceKeys, staged.missIndex, staged.missCount, staged.runStarts, staged.runMembers, Int32(staged.runs),
            layout.rawValue, Int32(keysPerSample), plan.keys, plan.members, plan.output)
        // Per miss: its key (or source row), then its member.
        let planned = try stage.pinned.buffer("plan", bytes: misses * 12)
        let plannedMembers = (planned + misses * 8).assumingMemoryBound(to: Int32.self)
        switch source {
        case .mappedTable(let table):
            // uvm: the mapped rows answer every miss now, and go into the cache.
            try probe(table, plan: plan, count: staged.missCount, n: misses)
            try fill(plan: plan, count: staged.missCount, n: misses, from: table.vectorsAddress, into: output)
            try stream.copy(to: planned, from: plan.source, bytes: misses * 8)
            try stream.copy(to: planned + misses * 8, from: plan.members, bytes: misses * 4)
            // Reading the free rows waits for the stream, so the two copies above are done.
            let free = try freeRowCount()
            counts.inserts += try insert(plan: plan, count: staged.missCount, n: misses, from: table.vectorsAddress, free: free)
            var found = [Int](repeating: 0, count: memberCount)
            let sourceRows = UnsafeRawPointer(planned).assumingMemoryBound(to: Int64.self)
            for k in 0..<misses {
                let member = Int(plannedMembers[k])
                outcome.missed[member] += 1
                if sourceRows[k] >= 0 { found[member] += 1 }
            }
            outcome.foundInTable = found
            let unheld = (0..<misses).filter { sourceRows[$0] < 0 }
            if let below, !unheld.isEmpty {
                // Keys the mapped table was not built with: an online update may have added them below.
                var planKeys = [Int64](repeating: 0, count: misses), planOutput = [Int64](repeating: 0, count: misses)
                try stream.download(into: &planKeys, from: plan.keys)
                try stream.download(into: &planOutput, from: plan.output)
                let keys = UnheldKeys(keys: unheld.map { planKeys[$0] }, members: unheld.map { plannedMembers[$0] },
                                      outputRows: unheld.map { Int32(planOutput[$0]) })
                outcome.below = try keys.fill(from: below, dim: dim, defaults: hostDefaults, memberCount: memberCount,
                                                    output: output, stage: stage, scatter: scatterRows)
            }
            counts.synchronousFills += 1
        case .tier:
            try stream.copy(to: planned, from: plan.keys, bytes: misses * 8)
            try stream.copy(to: planned + misses * 8, from: plan.members, bytes: misses * 4)
            try stream.synchronize()
            let keys = Array(UnsafeBufferPointer(start: UnsafeRawPointer(planned).assumingMemoryBound(to: Int64.self), count: misses))
            let members = Array(UnsafeBufferPointer(start: plannedMembers, count: misses))
            for member in members { outcome.missed[Int(member)] += 1 }
            let hitRate = 1 - Double(misses) / Double(n)
            guard hitRate < hitRateThreshold else {
                // Defaults now (the kernel wrote them); reading the misses from
                // the tiers below and inserting them runs after this call returns.
                counts.asynchronousInserts += 1
                pendingInserts.append((keys, members))
                for signal in insertSignals.values { signal.yield() }
                outcome.filled = false
                expectFill = false
                if hostRows && !rowsWithHead {
                    try stage.downloadRows(staged)
                    try stream.synchronize()
                }
                return outcome
            }
            // Fill the output now with each miss's vector (or the default), and insert.
            var fromBelow = TierHits(tiers: lower!.tiers.count, members: memberCount)
            let stagedRows = try stage(keys: keys, members: members, plan: plan, hits: &fromBelow)
            try fill(plan: plan, count: staged.missCount, n: misses, from: stagedRows, into: output)
            let free = try freeRowCount()
            counts.inserts += try insert(plan: plan, count: staged.missCount, n: misses, from: stagedRows, free: free)
            outcome.below = fromBelow
            counts.synchronousFills += 1
        }
        expectFill = true
        if hostRows { try stage.downloadRows(staged) }
        try stream.synchronize()
        return outcome
    }

    /// Inserts the misses answered with the default that are pending, now
    /// (for tests and benchmarks, which run no background work). Errors are
    /// counted in `detailedStatistics` (the keys stay missing).
    package func applyPendingInserts() {
        lock.withWriteLock {
            guard !pendingInserts.isEmpty else { return }
            do throws(CUDAError) {
                try cuda.makeCurrent()
            } catch {
                counts.failedInserts += 1
                counts.lastInsertError = "\(error)"
                return
            }
            applyPendingLocked()
        }
    }

    /// Reads the pending misses from the tiers below and inserts them;
    /// entered holding the lock, with the device current. A failure is
    /// counted, and the keys stay missing.
    func applyPendingLocked() {
        guard !pendingInserts.isEmpty else { return }
        let work = pendingInserts
        pendingInserts = []
        do throws(CUDAError) {
            for (keys, members) in work {
                try insert(keys: keys, members: members)
            }
            try stream.synchronize()
        } catch {
            counts.failedInserts += 1
            counts.lastInsertError = "\(error)"
        }
    }

    /// Registers a running insert work's wake-up: yielded to whenever a
    /// lookup leaves inserts pending (at once if some are).
    func registerInsertSignal(_ signal: AsyncStream<Void>.Continuation) -> Int {
        lock.withWriteLock {
            let id = nextInsertSignal
            nextInsertSignal += 1
            insertSignals[id] = signal
            if !pendingInserts.isEmpty { signal.yield() }
            return id
        }
    }

    /// Drops a stopped insert work's wake-up.
    func unregisterInsertSignal(_ id: Int) {
        lock.withWriteLock { insertSignals[id] = nil }
    }

    /// Refreshes from the tiers below, counting a failure instead of throwing
    /// (the refresh work's step).
    func refreshCountingErrors() {
        do {
            try refresh()
        } catch {
            lock.withWriteLock {
                counts.failedRefreshes += 1
                counts.lastRefreshError = "\(error)"
            }
        }
    }

    // MARK: Misses, inserts and evictions (holding the lock, with the device current)

    /// The device buffers of a plan of `n` keys.
    struct Plan {
        /// (n) Int64 keys.
        var keys: UInt64
        /// (n) Int32 members.
        var members: UInt64
        /// (n) Int64 output rows.
        var output: UInt64
        /// (n) Int64 source rows (-1: found nowhere).
        var source: UInt64
    }

    func planBuffers(_ n: Int) throws(CUDAError) -> Plan {
        Plan(keys: try scratchBuffer("planKeys", bytes: n * 8).address,
             members: try scratchBuffer("planMembers", bytes: n * 4).address,
             output: try scratchBuffer("planOutput", bytes: n * 8).address,
             source: try scratchBuffer("planSource", bytes: n * 8).address)
    }

    /// Sets `counters[index]` on the stream.
    func setCounter(_ index: Int, to value: UInt32) throws(CUDAError) {
        try cuda.driver.check(cuda.driver.cuMemsetD32Async(counters.address + UInt64(4 * index), value, 1, stream.handle),
                              "cuMemsetD32Async")
    }

    /// Rows on the free stack, after the stream's work.
    func freeRowCount() throws(CUDAError) -> Int {
        var free: [UInt32] = [0]
        try stream.download(into: &free, from: counters.address + 4)
        return Int(Int32(bitPattern: free[0]))
    }

    /// Advances the lookup epoch, restarting the stamps before they wrap.
    func nextEpoch() throws(CUDAError) {
        epoch &+= 1
        guard epoch >= UInt32.max - 1 else { return }
        // Four billion lookups: start the epochs again (UInt32.max marks a free row).
        try stampRestart.launch(grid: (capacity + 255) / 256, block: 256, stream: stream, stamps.address, Int32(capacity))
        epoch = 2
        stampFloor = 0
    }

    /// The plan's source rows in a mapped table's index.
    func probe(_ table: GPUStaticTable, plan: Plan, count: UInt64, n: Int) throws(CUDAError) {
        try probeRows.launch(grid: (n + 255) / 256, block: 256, stream: stream,
            plan.keys, plan.members, count, table.slotKeys.address, table.blocks.address, table.slotMembersAddress,
            UInt32(table.capacity), plan.source)
    }

    /// Writes each planned key's source row (or its member's default) to its output row.
    func fill(plan: Plan, count: UInt64, n: Int, from source: UInt64, into output: UInt64) throws(CUDAError) {
        try fillRows.launch(grid: (n * 32 + 255) / 256, block: 256, stream: stream,
            plan.source, plan.output, plan.members, count, source, defaults.address, output)
    }

    /// Reads planned keys from the tiers below into a device staging buffer
    /// (stored row k for key k, as the cache stores rows) and sets the plan's
    /// source rows (-1 where absent).
    func stage(keys: [Int64], members: [Int32], plan: Plan, hits: inout TierHits) throws(CUDAError) -> UInt64 {
        var (vectors, found) = fetch(keys: keys, members: members, hits: &hits)
        if storage != .fp32 {
            // A key found nowhere is neither inserted nor filled from here (its
            // default comes from the device): its row is not encoded, so a
            // default the format cannot hold fails nothing.
            for (k, held) in found.enumerated() where !held {
                for e in (k * dim)..<((k + 1) * dim) { vectors[e] = 0 }
            }
        }
        let staged = try upload(storedRows: vectors, count: keys.count, scratch: "staged") { keys[$0] }
        try stream.upload(found.enumerated().map { $1 ? Int64($0) : -1 }, to: plan.source)
        return staged
    }

    /// Uploads `count` rows read from the tiers below (decoded floats) into
    /// the scratch buffer `scratch`, stored as the cache stores rows: a
    /// quantized row is encoded again to decode to the same floats.
    /// - Parameter key: the key of row i, to name in an error.
    /// - Returns: the buffer's device address.
    func upload(storedRows vectors: [Float], count: Int, scratch: String, key: (Int) -> Int64) throws(CUDAError) -> UInt64 {
        let buffer = try scratchBuffer(scratch, bytes: max(4, count * storage.rowBytes(dim: dim)))
        guard storage != .fp32 else {
            try stream.upload(vectors, to: buffer.address)
            return buffer.address
        }
        let encoded = try vectors.withUnsafeBufferPointer { (rows) throws(CUDAError) in
            try EncodedRows.forDevice(rows.baseAddress!, count: count, codec: VectorCodec(storage: storage, dim: dim),
                                      table: name, decoded: true, key: key)
        }
        // From pageable memory: the driver stages the bytes before returning.
        try stream.copy(to: buffer.address, from: UnsafeRawPointer(encoded.base), bytes: encoded.byteCount)
        return buffer.address
    }

    /// Inserts the plan's keys whose source row is known. When the free rows
    /// run out, as many of the least recently used rows as keys were left
    /// without one are evicted and the insert runs again for those; the index
    /// is rebuilt first when tombstones would crowd it.
    /// - Returns: the keys inserted (keys held already are skipped).
    func insert(plan: Plan, count: UInt64, n: Int, from source: UInt64, free: Int) throws(CUDAError) -> Int {
        let wanted = min(n, capacity)
        if capacity - free + tombstones + wanted > slotCapacity * 3 / 4 {
            try rebuild()
        }
        try launchInsert(plan: plan, count: count, n: n, from: source)
        var inserted = 0
        if free < wanted {
            // counters[2] (inserted) … [6] (keys left without a row), in one copy.
            var after = [UInt32](repeating: 0, count: 5)
            try stream.download(into: &after, from: counters.address + 8)
            inserted += Int(after[0])
            guard after[4] > 0 else { return inserted }
            _ = try evict(Int(after[4]))
            // Evicting turns held rows into tombstones: the sum stays, the check holds.
            try launchInsert(plan: plan, count: count, n: n, from: source)
        }
        var last: [UInt32] = [0]
        try stream.download(into: &last, from: counters.address + 8)
        return inserted + Int(last[0])
    }

    /// One pass of `hps_cache_insert` over a plan (keys already held are skipped).
    func launchInsert(plan: Plan, count: UInt64, n: Int, from source: UInt64) throws(CUDAError) {
        try setCounter(2, to: 0)
        try setCounter(6, to: 0)
        try cacheInsert.launch(grid: (n * 32 + 255) / 256, block: 256, stream: stream,
            plan.keys, plan.members, plan.source, count, source, slots.address, UInt32(slotCapacity), UInt32(rowBits),
            vectors.address, stamps.address, epoch, rowKeys.address, rowMembers.address, rowSlots.address,
            freeRows.address, counters.address + 4, counters.address + 8, counters.address + 24)
    }

    /// Rebuilds the index from the rows, dropping the tombstones.
    func rebuild() throws(CUDAError) {
        try cuda.driver.check(cuda.driver.cuMemsetD32Async(slots.address, 0, slotCapacity * 4, stream.handle), "cuMemsetD32Async")
        try cacheRehash.launch(grid: (capacity + 255) / 256, block: 256, stream: stream,
            stamps.address, Int32(capacity), rowKeys.address, rowMembers.address, rowSlots.address,
            slots.address, UInt32(slotCapacity), UInt32(rowBits))
        tombstones = 0
        counts.rebuilds += 1
    }

    /// Inserts host keys: their vectors from the tiers below, or from the mapped table.
    func insert(keys: [Int64], members: [Int32]) throws(CUDAError) {
        guard !keys.isEmpty else { return }
        // No leading synchronize: the plan buffers are reused only in stream order.
        let plan = try planBuffers(keys.count)
        try stream.upload(keys, to: plan.keys)
        try stream.upload(members, to: plan.members)
        try setCounter(5, to: UInt32(keys.count))
        let count = counters.address + 20
        let free = try freeRowCount()
        switch source {
        case .mappedTable(let table):
            try probe(table, plan: plan, count: count, n: keys.count)
            counts.inserts += try insert(plan: plan, count: count, n: keys.count, from: table.vectorsAddress, free: free)
        case .tier:
            var hits = TierHits(tiers: lower!.tiers.count, members: memberCount)
            let staged = try stage(keys: keys, members: members, plan: plan, hits: &hits)
            counts.inserts += try insert(plan: plan, count: count, n: keys.count, from: staged, free: free)
        }
        try stream.synchronize()
    }

    /// Reads keys from the tiers below: their vectors (the default where absent) and which were found.
    /// - Parameter hits: receives, per tier below and member, the keys each answered, and the keys none holds.
    func fetch(keys: [Int64], members: [Int32], hits: inout TierHits) -> (vectors: [Float], found: [Bool]) {
        let start = ContinuousClock.now
        defer { counts.fetchNanoseconds += (ContinuousClock.now - start).nanoseconds }
        return lower!.read(keys: keys, members: members, dim: dim, defaults: hostDefaults, hits: &hits)
    }

    /// Frees `count` rows, those used least recently: the GPU counts the
    /// rows per epoch of last use, then frees the oldest (their slots become
    /// tombstones, their rows go on the free stack).
    /// - Returns: the rows freed.
    func evict(_ count: Int) throws(CUDAError) -> Int {
        let start = ContinuousClock.now
        defer { counts.evictNanoseconds += (ContinuousClock.now - start).nanoseconds }
        // One bin per epoch since the floor, at most 65,536 (older ones share bin 0).
        let lo = max(stampFloor, epoch > 65_535 ? epoch - 65_535 : 0)
        let bins = Int(epoch - lo) + 1
        let grid = (capacity + 255) / 256
        let histogram = try scratchBuffer("evictHistogram", bytes: bins * 4)
        try cuda.driver.check(cuda.driver.cuMemsetD32Async(histogram.address, 0, bins, stream.handle), "cuMemsetD32Async")
        try stampHistogram.launch(grid: grid, block: 256, stream: stream,
                                  stamps.address, Int32(capacity), lo, Int32(bins), histogram.address)
        var perBin = [UInt32](repeating: 0, count: bins)
        try stream.download(into: &perBin, from: histogram.address)
        var cutoff = bins - 1, below = 0
        for bin in 0..<bins {
            if bin == bins - 1 || below + Int(perBin[bin]) >= count { cutoff = bin; break }
            below += Int(perBin[bin])
        }
        let atCutoff = min(count - below, Int(perBin[cutoff]))
        try setCounter(3, to: 0)
        try setCounter(4, to: 0)
        try stampSelect.launch(grid: grid, block: 256, stream: stream,
            stamps.address, Int32(capacity), lo, Int32(bins), Int32(cutoff), UInt32(atCutoff), counters.address + 12,
            slots.address, rowSlots.address, freeRows.address, counters.address + 4)
        var freed: [UInt32] = [0]
        try stream.download(into: &freed, from: counters.address + 16)
        if cutoff > 0 { stampFloor = lo + UInt32(cutoff) }
        tombstones += Int(freed[0])
        counts.evictions += Int(freed[0])
        return Int(freed[0])
    }

    // MARK: Prefill and refresh

    /// Fills the cache at start with up to `fraction` of its capacity from
    /// `keys` (per member), as `init_ec` and `cache_refresh_percentage_per_iteration` ask.
    package func prefill(keys: [[Int64]], fraction: Double) throws(CUDAError) {
        let budget = min(capacity, Int((Double(capacity) * fraction).rounded(.up)))
        var chosen: [Int64] = [], members: [Int32] = []
        var cursor = [Int](repeating: 0, count: keys.count)
        while chosen.count < budget {
            var progressed = false
            for m in keys.indices where cursor[m] < keys[m].count && chosen.count < budget {
                chosen.append(keys[m][cursor[m]])
                members.append(Int32(m))
                cursor[m] += 1
                progressed = true
            }
            if !progressed { break }
        }
        try lock.withWriteLock { () throws(CUDAError) in
            try cuda.makeCurrent()
            try nextEpoch()
            try insert(keys: chosen, members: members)
        }
    }

    /// Re-reads every cached key from the tiers below (online updates reach
    /// the GPU this way). A uvm cache's rows are always current (its mapped
    /// table is read-only): nothing to do.
    package func refresh() throws(CUDAError) {
        guard lower != nil else { return }
        try lock.withWriteLock { () throws(CUDAError) in
            try cuda.makeCurrent()
            var stamp = [UInt32](repeating: 0, count: capacity)
            var keyOfRow = [Int64](repeating: 0, count: capacity)
            var memberOfRow = [Int32](repeating: 0, count: capacity)
            try stream.download(into: &stamp, from: stamps.address)
            try stream.download(into: &keyOfRow, from: rowKeys.address)
            try stream.download(into: &memberOfRow, from: rowMembers.address)
            let rows = (0..<capacity).filter { stamp[$0] != UInt32.max }
            var hits = TierHits(tiers: lower!.tiers.count, members: memberCount)
            let (vectors, found) = fetch(keys: rows.map { keyOfRow[$0] }, members: rows.map { memberOfRow[$0] }, hits: &hits)
            // A key gone from the tiers below keeps its cached vector until evicted.
            let keep = rows.indices.filter { found[$0] }
            guard !keep.isEmpty else { counts.refreshes += 1; return }
            let rowBuffer = try scratchBuffer("refreshRows", bytes: keep.count * 4)
            try stream.upload(keep.map { Int32(rows[$0]) }, to: rowBuffer.address)
            let stored = try upload(storedRows: keep.flatMap { vectors[($0 * dim)..<(($0 + 1) * dim)] }, count: keep.count,
                                    scratch: "refreshVectors") { keyOfRow[rows[keep[$0]]] }
            let words = storage.rowBytes(dim: dim) / 4
            try scatterStoredRows.launch(grid: (keep.count * words + 255) / 256, block: 256, stream: stream,
                                         rowBuffer.address, stored, Int32(keep.count), self.vectors.address)
            try stream.synchronize()
            counts.refreshes += 1
        }
    }
}
