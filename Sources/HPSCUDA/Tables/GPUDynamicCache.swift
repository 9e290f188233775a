import Dispatch
public import HPS

/// HugeCTR's dynamic embedding cache on the GPU: `capacity` rows of a
/// (possibly fused) table in GPU memory, in front of a source of misses,
/// least recently used rows evicted first. The source is the tier below
/// (the CPU store: the `dynamic` cache type), or the whole table in mapped
/// host memory (`uvm`), whose rows the GPU copies over the bus itself, so
/// that a miss never moves a vector through host code.
///
/// A lookup reports its misses. When the hit rate is under
/// `hitRateThreshold`, the missing vectors are fetched from the tier below,
/// written into the output and inserted before the call returns; otherwise
/// they are answered with the default value now, and read from the tier
/// below and inserted afterwards (HPS's semantics), by a background queue or
/// by the next lookup before its own, whichever comes first. A uvm cache
/// always answers its misses before returning: the GPU reads them itself.
///
/// Everything about the rows lives on the GPU: the index (open addressing
/// over twice as many slots as rows, evicted keys left as tombstones until
/// the index is rebuilt), each row's key, member, slot and last use, and
/// the stack of free rows. Kernels plan the misses, insert them (a key
/// missed twice in one batch is inserted once), and pick the least recently
/// used rows to evict; the host only reads the tier below for a `dynamic`
/// cache. Unlike HugeCTR's set-associative cache, a cache whose capacity is
/// at least the table's key count holds every key once it has been seen.
///
/// Thread safety: lookups, inserts and refreshes may be called from any
/// thread; they take turns on one lock.
public final class GPUDynamicCache: @unchecked Sendable {
    /// Floats per vector.
    public let dim: Int
    /// Rows the cache holds.
    public let capacity: Int
    /// Member tables.
    public let memberCount: Int
    /// Whether keys are uploaded as int64 (else uint32).
    public let int64Keys: Bool
    /// Below this hit rate, misses are filled before the lookup returns.
    public let hitRateThreshold: Double
    /// Where the misses are read from.
    public let source: MissSource

    /// Where a cache's misses are read from.
    public enum MissSource: @unchecked Sendable {
        /// The tier below on the CPU (`dynamic`), with the same member numbering.
        case tier(any EmbeddingStoreTable)
        /// The whole table in mapped host memory (`uvm`): misses are copied
        /// by the GPU from its rows, always before the lookup returns, since
        /// that costs no host round trip for the vectors.
        case mappedTable(GPUStaticTable)
    }

    let kernels: GPUKernels
    let device: CUDADevice
    let stream: CUDAStream
    let insertStream: CUDAStream
    let lock = ReadWriteLock()
    let insertQueue = DispatchQueue(label: "swift-hps.gpu-cache.insert")

    // Device state: the index, the rows and what the kernels know of them.
    let slotCapacity: Int
    let rowBits: Int
    let slots: DeviceBuffer<UInt64>
    let vectors: DeviceBuffer<Float>
    let stamps: DeviceBuffer<UInt32>
    let rowKeys: DeviceBuffer<Int64>
    let rowMembers: DeviceBuffer<Int32>
    let rowSlots: DeviceBuffer<UInt32>
    let freeRows: DeviceBuffer<Int32>
    /// [0] misses of the last lookup, [1] free rows, [2] keys inserted,
    /// [3], [4] the eviction's counters, [5] the count of a host-made plan,
    /// [6] keys an insert found no free row for.
    let counters: DeviceBuffer<UInt32>
    let defaults: DeviceBuffer<Float>
    let hostDefaults: [Float]
    let lookupKernel: CUDAKernel
    let missPlan: CUDAKernel
    let probeRows: CUDAKernel
    let fillRows: CUDAKernel
    let cacheInsert: CUDAKernel
    let cacheRehash: CUDAKernel
    let scatterRows: CUDAKernel
    let stampHistogram: CUDAKernel
    let stampSelect: CUDAKernel
    let stampRestart: CUDAKernel

    var epoch: UInt32 = 1
    /// No held row's stamp is older than this epoch (rows older were evicted).
    var stampFloor: UInt32 = 0
    /// Evicted keys' slots since the index was last rebuilt.
    var tombstones = 0
    /// Misses answered with the default value whose insert has not run yet:
    /// the background queue applies them, or the next lookup first if it
    /// takes the lock sooner (so that a busy caller cannot starve them).
    var pendingInserts: [(keys: [Int64], members: [Int32])] = []
    let scratch: DeviceScratch
    var refreshTimer: (any DispatchSourceTimer)?

    /// Counters since the cache was made.
    public private(set) var statistics = Statistics()

    /// What the cache has seen.
    public struct Statistics: Sendable, Equatable {
        /// Keys looked up.
        public var keys = 0
        /// Keys found in the cache.
        public var hits = 0
        /// Lookups whose misses were filled before returning.
        public var synchronousFills = 0
        /// Lookups whose misses were inserted afterwards.
        public var asynchronousInserts = 0
        /// Rows evicted to make room.
        public var evictions = 0
        /// Times the index was rebuilt to drop the evicted keys' tombstones.
        public var rebuilds = 0
        /// Refreshes from the tier below.
        public var refreshes = 0
        /// Inserts after a lookup that failed (the keys stay missing; the
        /// next lookup of them tries again).
        public var failedInserts = 0
        /// The last failed insert's error.
        public var lastInsertError: String?
        /// Where the time of misses goes, in nanoseconds: handling them in
        /// the lookup (after the kernel), of which reading the tier below
        /// and choosing evictions (also when inserting afterwards).
        public var missNanoseconds: UInt64 = 0
        /// Reading misses from the tier below.
        public var fetchNanoseconds: UInt64 = 0
        /// Choosing and freeing the rows to evict.
        public var evictNanoseconds: UInt64 = 0

        /// hits / keys.
        public var hitRate: Double { keys == 0 ? 0 : Double(hits) / Double(keys) }
    }

    /// An empty cache.
    /// - Parameters:
    ///   - capacity: rows; `gpucacheper` × the table's keys.
    ///   - lower: the tier misses are read from (the same member numbering).
    ///   - defaults: per member, the value of a key found nowhere.
    public convenience init(kernels: GPUKernels, dim: Int, capacity: Int, members: Int, lower: any EmbeddingStoreTable,
                            defaults: [Float], hitRateThreshold: Double, int64Keys: Bool) throws(CUDAError) {
        try self.init(kernels: kernels, dim: dim, capacity: capacity, members: members, source: .tier(lower),
                      defaults: defaults, hitRateThreshold: hitRateThreshold, int64Keys: int64Keys)
    }

    /// An empty cache in front of `source`.
    /// - Parameters:
    ///   - capacity: rows; `gpucacheper` × the table's keys.
    ///   - source: the tier below, or the table in mapped host memory (same members, vec size and key type).
    ///   - defaults: per member, the value of a key found nowhere.
    public init(kernels: GPUKernels, dim: Int, capacity: Int, members: Int, source: MissSource,
                defaults: [Float], hitRateThreshold: Double, int64Keys: Bool) throws(CUDAError) {
        switch source {
        case .tier(let lower):
            guard lower.vecSize == dim, lower.memberCount == members else {
                throw .unsupported("the tier below \(lower.tag) has vec size \(lower.vecSize) and \(lower.memberCount) member(s), not \(dim) and \(members)")
            }
        case .mappedTable(let table):
            guard table.dim == dim, table.memberCount == members, table.int64Keys == int64Keys, table.placement == .mappedHost else {
                throw .unsupported("a uvm cache needs a table in mapped host memory of vec size \(dim), \(members) member(s) and \(int64Keys ? "int64" : "int32") keys; this one has vec size \(table.dim) and \(table.memberCount) member(s)\(table.placement == .device ? ", in device memory" : "")")
            }
        }
        self.kernels = kernels
        self.device = kernels.device
        self.dim = dim
        self.capacity = max(1, capacity)
        self.memberCount = members
        self.int64Keys = int64Keys
        self.hitRateThreshold = hitRateThreshold
        self.source = source
        let memberBits = members <= 1 ? 0 : (Int.bitWidth - (members - 1).leadingZeroBitCount)
        rowBits = 32 - memberBits
        // Refs are row + 1 in rowBits bits; the top two values of a 32-bit ref mark busy and deleted slots.
        guard self.capacity < (1 << rowBits) - 3 else {
            throw .unsupported("a GPU cache of \(members) members holds at most \((1 << rowBits) - 4) rows")
        }
        slotCapacity = 2 * self.capacity + 16
        scratch = DeviceScratch(device: device)
        stream = try CUDAStream(device: device)
        insertStream = try CUDAStream(device: device)
        slots = try DeviceBuffer(device: device, count: slotCapacity * 2)
        try slots.fill32(0)
        vectors = try DeviceBuffer(device: device, count: self.capacity * dim)
        stamps = try DeviceBuffer(device: device, count: self.capacity)
        try stamps.fill32(UInt32.max)  // every row free (HPS_FREE_ROW)
        rowKeys = try DeviceBuffer(device: device, count: self.capacity)
        rowMembers = try DeviceBuffer(device: device, count: self.capacity)
        rowSlots = try DeviceBuffer(device: device, count: self.capacity)
        freeRows = try DeviceBuffer(device: device, copying: (0..<Int32(self.capacity)).map { $0 })
        counters = try DeviceBuffer(device: device, copying: [0, UInt32(self.capacity), 0, 0, 0, 0, 0, 0])
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        hostDefaults = defaults
        let module = try kernels.module(dim: dim, int64Keys: int64Keys)
        lookupKernel = try module.kernel("hps_lookup")
        missPlan = try module.kernel("hps_miss_plan")
        probeRows = try module.kernel("hps_probe_rows")
        fillRows = try module.kernel("hps_fill_rows")
        cacheInsert = try module.kernel("hps_cache_insert")
        cacheRehash = try module.kernel("hps_cache_rehash")
        scatterRows = try module.kernel("hps_scatter_rows")
        stampHistogram = try module.kernel("hps_stamp_histogram")
        stampSelect = try module.kernel("hps_stamp_select")
        stampRestart = try module.kernel("hps_stamp_restart")
    }

    deinit {
        refreshTimer?.cancel()
        insertQueue.sync {}
    }

    /// Keys held (read from the device; 0 if it cannot be read).
    public var count: Int {
        lock.withWriteLock { (try? freeRowCount(stream: stream)).map { capacity - $0 } ?? 0 }
    }

    /// A device scratch buffer of at least `bytes` bytes, kept between calls.
    func scratchBuffer(_ name: String, bytes: Int) throws(CUDAError) -> DeviceBuffer<UInt8> {
        try scratch.buffer(name, bytes: bytes)
    }

    /// What one lookup did.
    public struct LookupReport: Sendable, Equatable {
        /// Keys looked up.
        public var keys: Int
        /// Keys found in the cache.
        public var hits: Int
        /// Whether the misses were filled before returning (else they hold
        /// the default value and are being inserted).
        public var filled: Bool
    }

    /// Looks up host keys into a device output.
    /// - Parameters:
    ///   - keys: (n) keys, run after run.
    ///   - runs: (member, count) per run; the counts sum to n.
    ///   - output: device address of n × dim floats, laid out by `layout`.
    public func lookup(keys: [Int64], runs: [(member: Int, count: Int)], output: UInt64,
                       layout: GPUStaticTable.Layout = .keyOrder, keysPerSample: Int = 1) throws -> LookupReport {
        lock.lockWrite()
        let buffer: DeviceBuffer<UInt8>
        do {
            // Earlier work on the stream may still read this buffer.
            try stream.synchronize()
            buffer = try scratchBuffer("hostKeys", bytes: keys.count * (int64Keys ? 8 : 4))
            if int64Keys {
                try stream.upload(keys, to: buffer.address)
            } else {
                try stream.upload(keys.map { UInt32(truncatingIfNeeded: $0) }, to: buffer.address)
            }
        } catch {
            lock.unlock()
            throw error
        }
        return try lookupLocked(deviceKeys: buffer.address, count: keys.count, runs: runs, output: output, layout: layout,
                                keysPerSample: keysPerSample)
    }

    /// Looks up keys already on the device (int64 or uint32, as the cache was
    /// made) into a device output. `hostKeys` is accepted for callers that
    /// have them; the misses' keys are gathered on the device either way.
    public func lookup(deviceKeys: UInt64, count n: Int, runs: [(member: Int, count: Int)], output: UInt64,
                       layout: GPUStaticTable.Layout = .keyOrder, keysPerSample: Int = 1,
                       hostKeys: [Int64]? = nil) throws -> LookupReport {
        lock.lockWrite()
        return try lookupLocked(deviceKeys: deviceKeys, count: n, runs: runs, output: output, layout: layout,
                                keysPerSample: keysPerSample)
    }

    /// The lookup, entered holding the lock, which it releases before returning.
    private func lookupLocked(deviceKeys: UInt64, count n: Int, runs: [(member: Int, count: Int)], output: UInt64,
                              layout: GPUStaticTable.Layout, keysPerSample: Int) throws -> LookupReport {
        var unlocked = false
        defer { if !unlocked { lock.unlock() } }
        guard n > 0 else { return LookupReport(keys: 0, hits: 0, filled: true) }
        applyPendingInserts(stream: stream)
        var starts = [Int32](repeating: 0, count: runs.count + 1)
        for (r, run) in runs.enumerated() { starts[r + 1] = starts[r] + Int32(run.count) }
        guard Int(starts[runs.count]) == n else {
            throw CUDAError.unsupported("the runs hold \(starts[runs.count]) keys but \(n) keys were given")
        }
        try nextEpoch()
        try stream.synchronize()
        let runBuffer = try scratchBuffer("runs", bytes: (2 * runs.count + 1) * 4)
        let missBuffer = try scratchBuffer("missIndex", bytes: n * 4)
        try stream.upload(starts + runs.map { Int32($0.member) }, to: runBuffer.address)
        try setCounter(0, to: 0, stream: stream)
        let runMembers = runBuffer.address + UInt64(4 * (runs.count + 1))
        try LookupLaunch(keys: deviceKeys, count: n, runStarts: runBuffer.address,
                         runMembers: runMembers, runs: runs.count,
                         slots: slots.address, capacity: slotCapacity, rowBits: rowBits, vectors: vectors.address,
                         defaults: defaults.address, output: output, layout: layout, keysPerSample: keysPerSample,
                         misses: counters.address, stamps: stamps.address, epoch: epoch,
                         missIndex: missBuffer.address).launch(lookupKernel, device: device, stream: stream)
        var head: [UInt32] = [0, 0]
        try stream.download(into: &head, from: counters.address)
        let misses = Int(head[0]), free = Int(Int32(bitPattern: head[1]))
        statistics.keys += n
        statistics.hits += n - misses
        guard misses > 0 else { return LookupReport(keys: n, hits: n, filled: true) }
        let missStart = MonotonicClock.nanoseconds()
        defer { statistics.missNanoseconds += MonotonicClock.nanoseconds() - missStart }

        // The misses' keys, members and output rows, planned on the device.
        let plan = try planBuffers(misses)
        try missPlan.launch(grid: (misses + 255) / 256, block: 256, stream: stream, [
            deviceKeys, missBuffer.address, counters.address, runBuffer.address, runMembers, Int32(runs.count),
            layout.rawValue, Int32(keysPerSample), plan.keys, plan.members, plan.output,
        ])
        switch source {
        case .mappedTable(let table):
            // uvm: the mapped rows answer every miss now, and go into the cache.
            try probe(table, plan: plan, count: counters.address, n: misses, stream: stream)
            try fill(plan: plan, count: counters.address, n: misses, from: table.vectorsAddress, into: output, stream: stream)
            try insert(plan: plan, count: counters.address, n: misses, from: table.vectorsAddress, free: free, stream: stream)
            try stream.synchronize()
            statistics.synchronousFills += 1
            return LookupReport(keys: n, hits: n - misses, filled: true)
        case .tier(let lower):
            var keys = [Int64](repeating: 0, count: misses)
            var members = [Int32](repeating: 0, count: misses)
            try stream.download(into: &keys, from: plan.keys)
            try stream.download(into: &members, from: plan.members)
            let hitRate = 1 - Double(misses) / Double(n)
            if hitRate < hitRateThreshold {
                // Fill the output now with each miss's vector (or the default), and insert.
                let staged = try stage(keys: keys, members: members, from: lower, plan: plan, stream: stream)
                try fill(plan: plan, count: counters.address, n: misses, from: staged, into: output, stream: stream)
                try insert(plan: plan, count: counters.address, n: misses, from: staged, free: free, stream: stream)
                try stream.synchronize()
                statistics.synchronousFills += 1
                return LookupReport(keys: n, hits: n - misses, filled: true)
            }
            // Defaults now (the kernel wrote them); reading the misses from
            // the tier below and inserting them runs after this call returns.
            statistics.asynchronousInserts += 1
            pendingInserts.append((keys, members))
            unlocked = true
            lock.unlock()
            insertQueue.async { [self] in
                // Driver calls need the device's context current on this thread.
                try? device.makeCurrent()
                lock.lockWrite()
                defer { lock.unlock() }
                applyPendingInserts(stream: insertStream)
            }
            return LookupReport(keys: n, hits: n - misses, filled: false)
        }
    }

    /// Waits for inserts started by earlier lookups.
    public func waitForInserts() {
        insertQueue.sync {}
    }

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

    /// Sets `counters[index]` on `stream`.
    func setCounter(_ index: Int, to value: UInt32, stream: CUDAStream) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemsetD32Async(counters.address + UInt64(4 * index), value, 1, stream.handle),
                                "cuMemsetD32Async")
    }

    /// Rows on the free stack, after the stream's work.
    func freeRowCount(stream: CUDAStream) throws(CUDAError) -> Int {
        var free: [UInt32] = [0]
        try stream.download(into: &free, from: counters.address + 4)
        return Int(Int32(bitPattern: free[0]))
    }

    /// Advances the lookup epoch, restarting the stamps before they wrap.
    func nextEpoch() throws(CUDAError) {
        epoch &+= 1
        guard epoch >= UInt32.max - 1 else { return }
        // Four billion lookups: start the epochs again (UInt32.max marks a free row).
        try stampRestart.launch(grid: (capacity + 255) / 256, block: 256, stream: stream, [stamps.address, Int32(capacity)])
        epoch = 2
        stampFloor = 0
    }

    /// The plan's source rows in a mapped table's index.
    func probe(_ table: GPUStaticTable, plan: Plan, count: UInt64, n: Int, stream: CUDAStream) throws(CUDAError) {
        try probeRows.launch(grid: (n + 255) / 256, block: 256, stream: stream, [
            plan.keys, plan.members, count, table.slotKeys.address, table.blocks.address, table.slotMembersAddress,
            UInt32(table.capacity), plan.source,
        ])
    }

    /// Writes each planned key's source row (or its member's default) to its output row.
    func fill(plan: Plan, count: UInt64, n: Int, from source: UInt64, into output: UInt64, stream: CUDAStream) throws(CUDAError) {
        try fillRows.launch(grid: (n * 32 + 255) / 256, block: 256, stream: stream, [
            plan.source, plan.output, plan.members, count, source, defaults.address, output,
        ])
    }

    /// Reads planned keys from the tier below into a device staging buffer
    /// (row k for key k) and sets the plan's source rows (-1 where absent).
    func stage(keys: [Int64], members: [Int32], from lower: any EmbeddingStoreTable, plan: Plan,
               stream: CUDAStream) throws -> UInt64 {
        let (vectors, found) = try fetch(keys: keys, members: members, from: lower)
        let staged = try scratchBuffer("staged", bytes: vectors.count * 4)
        try stream.upload(vectors, to: staged.address)
        try stream.upload(found.enumerated().map { $1 ? Int64($0) : -1 }, to: plan.source)
        return staged.address
    }

    /// Inserts the plan's keys whose source row is known. When the free rows
    /// run out, as many of the least recently used rows as keys were left
    /// without one are evicted and the insert runs again for those; the index
    /// is rebuilt first when tombstones would crowd it.
    func insert(plan: Plan, count: UInt64, n: Int, from source: UInt64, free: Int, stream: CUDAStream) throws {
        let wanted = min(n, capacity)
        if capacity - free + tombstones + wanted > slotCapacity * 3 / 4 {
            try rebuild(stream: stream)
        }
        try launchInsert(plan: plan, count: count, n: n, from: source, stream: stream)
        guard free < wanted else { return }
        var lacking: [UInt32] = [0]
        try stream.download(into: &lacking, from: counters.address + 24)
        guard lacking[0] > 0 else { return }
        _ = try evict(Int(lacking[0]), stream: stream)
        // Evicting turns held rows into tombstones: the sum stays, the check holds.
        try launchInsert(plan: plan, count: count, n: n, from: source, stream: stream)
    }

    /// One pass of `hps_cache_insert` over a plan (keys already held are skipped).
    func launchInsert(plan: Plan, count: UInt64, n: Int, from source: UInt64, stream: CUDAStream) throws(CUDAError) {
        try setCounter(2, to: 0, stream: stream)
        try setCounter(6, to: 0, stream: stream)
        try cacheInsert.launch(grid: (n * 32 + 255) / 256, block: 256, stream: stream, [
            plan.keys, plan.members, plan.source, count, source, slots.address, UInt32(slotCapacity), UInt32(rowBits),
            vectors.address, stamps.address, epoch, rowKeys.address, rowMembers.address, rowSlots.address,
            freeRows.address, counters.address + 4, counters.address + 8, counters.address + 24,
        ])
    }

    /// Rebuilds the index from the rows, dropping the tombstones.
    func rebuild(stream: CUDAStream) throws(CUDAError) {
        try device.driver.check(device.driver.cuMemsetD32Async(slots.address, 0, slotCapacity * 4, stream.handle), "cuMemsetD32Async")
        try cacheRehash.launch(grid: (capacity + 255) / 256, block: 256, stream: stream, [
            stamps.address, Int32(capacity), rowKeys.address, rowMembers.address, rowSlots.address,
            slots.address, UInt32(slotCapacity), UInt32(rowBits),
        ])
        tombstones = 0
        statistics.rebuilds += 1
    }

    /// Reads the pending misses from the tier below and inserts them; entered
    /// holding the lock. A failure is counted, and the keys stay missing.
    private func applyPendingInserts(stream: CUDAStream) {
        guard !pendingInserts.isEmpty, case .tier(let lower) = source else { return }
        let work = pendingInserts
        pendingInserts = []
        do {
            for (keys, members) in work {
                try insert(keys: keys, members: members, from: lower, stream: stream)
            }
            try stream.synchronize()
        } catch {
            statistics.failedInserts += 1
            statistics.lastInsertError = "\(error)"
        }
    }

    /// Inserts host keys: their vectors from the tier below, or from the mapped table.
    func insert(keys: [Int64], members: [Int32], from lower: (any EmbeddingStoreTable)?, stream: CUDAStream) throws {
        guard !keys.isEmpty else { return }
        try stream.synchronize()
        let plan = try planBuffers(keys.count)
        try stream.upload(keys, to: plan.keys)
        try stream.upload(members, to: plan.members)
        try setCounter(5, to: UInt32(keys.count), stream: stream)
        let count = counters.address + 20
        let free = try freeRowCount(stream: stream)
        switch source {
        case .mappedTable(let table):
            try probe(table, plan: plan, count: count, n: keys.count, stream: stream)
            try insert(plan: plan, count: count, n: keys.count, from: table.vectorsAddress, free: free, stream: stream)
        case .tier(let tier):
            let staged = try stage(keys: keys, members: members, from: lower ?? tier, plan: plan, stream: stream)
            try insert(plan: plan, count: count, n: keys.count, from: staged, free: free, stream: stream)
        }
        try stream.synchronize()
    }

    /// Reads keys from the tier below: their vectors (the default where absent) and which were found.
    func fetch(keys: [Int64], members: [Int32], from lower: any EmbeddingStoreTable) throws -> (vectors: [Float], found: [Bool]) {
        let start = MonotonicClock.nanoseconds()
        defer { statistics.fetchNanoseconds += MonotonicClock.nanoseconds() - start }
        // The tier below takes runs of one member: keys of several members
        // are read in member order, then put back in place.
        let grouped = zip(members, members.dropFirst()).allSatisfy { $0 <= $1 }
        let order = grouped ? Array(keys.indices) : keys.indices.sorted { members[$0] < members[$1] }
        let sortedKeys = grouped ? keys : order.map { keys[$0] }
        var vectors = [Float](repeating: 0, count: keys.count * dim)
        var sortedVectors = grouped ? [] : [Float](repeating: 0, count: keys.count * dim)
        var missed = [Int](repeating: 0, count: keys.count)
        func read(into v: UnsafeMutableBufferPointer<Float>) -> Int {
            sortedKeys.withUnsafeBufferPointer { k in
                var runs: [LookupRun] = []
                var j = 0
                while j < keys.count {
                    var end = j + 1
                    while end < keys.count && members[order[end]] == members[order[j]] { end += 1 }
                    runs.append(LookupRun(member: Int(members[order[j]]), keys: k.baseAddress! + j, count: end - j,
                                          output: v.baseAddress! + j * dim))
                    j = end
                }
                return hostDefaults.withUnsafeBufferPointer { d in
                    missed.withUnsafeMutableBufferPointer { m in
                        runs.withUnsafeBufferPointer {
                            lower.lookup($0, defaults: d, missed: m.baseAddress, parallelism: Self.fetchParallelism(keys.count))
                        }
                    }
                }
            }
        }
        let misses = grouped ? vectors.withUnsafeMutableBufferPointer { read(into: $0) }
                             : sortedVectors.withUnsafeMutableBufferPointer { read(into: $0) }
        var found = [Bool](repeating: true, count: keys.count)
        for i in 0..<misses { found[order[missed[i]]] = false }
        if !grouped {
            vectors.withUnsafeMutableBufferPointer { target in
                sortedVectors.withUnsafeBufferPointer { source in
                    for (j, i) in order.enumerated() {
                        (target.baseAddress! + i * dim).update(from: source.baseAddress! + j * dim, count: dim)
                    }
                }
            }
        }
        return (vectors, found)
    }

    /// Threads for reading `count` misses from the tier below: one per 4,096 keys, at most every core.
    static func fetchParallelism(_ count: Int) -> Int {
        max(1, min(availableCores, count / 4096))
    }

    /// Frees `count` rows, those used least recently: the GPU counts the
    /// rows per epoch of last use, then frees the oldest (their slots become
    /// tombstones, their rows go on the free stack).
    /// - Returns: the rows freed.
    func evict(_ count: Int, stream: CUDAStream) throws -> Int {
        let start = MonotonicClock.nanoseconds()
        defer { statistics.evictNanoseconds += MonotonicClock.nanoseconds() - start }
        // One bin per epoch since the floor, at most 65,536 (older ones share bin 0).
        let lo = max(stampFloor, epoch > 65_535 ? epoch - 65_535 : 0)
        let bins = Int(epoch - lo) + 1
        let grid = (capacity + 255) / 256
        let histogram = try scratchBuffer("evictHistogram", bytes: bins * 4)
        try device.driver.check(device.driver.cuMemsetD32Async(histogram.address, 0, bins, stream.handle), "cuMemsetD32Async")
        try stampHistogram.launch(grid: grid, block: 256, stream: stream,
                                  [stamps.address, Int32(capacity), lo, Int32(bins), histogram.address])
        var perBin = [UInt32](repeating: 0, count: bins)
        try stream.download(into: &perBin, from: histogram.address)
        var cutoff = bins - 1, below = 0
        for bin in 0..<bins {
            if bin == bins - 1 || below + Int(perBin[bin]) >= count { cutoff = bin; break }
            below += Int(perBin[bin])
        }
        let atCutoff = min(count - below, Int(perBin[cutoff]))
        try setCounter(3, to: 0, stream: stream)
        try setCounter(4, to: 0, stream: stream)
        try stampSelect.launch(grid: grid, block: 256, stream: stream, [
            stamps.address, Int32(capacity), lo, Int32(bins), Int32(cutoff), UInt32(atCutoff), counters.address + 12,
            slots.address, rowSlots.address, freeRows.address, counters.address + 4,
        ])
        var freed: [UInt32] = [0]
        try stream.download(into: &freed, from: counters.address + 16)
        if cutoff > 0 { stampFloor = lo + UInt32(cutoff) }
        tombstones += Int(freed[0])
        statistics.evictions += Int(freed[0])
        return Int(freed[0])
    }

    /// Fills the cache at start with up to `fraction` of its capacity from
    /// `keys` (per member), as `init_ec` and `cache_refresh_percentage_per_iteration` ask.
    public func prefill(keys: [[Int64]], fraction: Double) throws {
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
        try lock.withWriteLock {
            try nextEpoch()
            try insert(keys: chosen, members: members, from: nil, stream: stream)
        }
    }

    /// Re-reads every cached key from the tier below (online updates reach
    /// the GPU this way).
    public func refresh() throws {
        // The mapped table is read-only: a uvm cache's rows are always current.
        guard case .tier(let lower) = source else { return }
        try lock.withWriteLock {
            try stream.synchronize()
            var stamp = [UInt32](repeating: 0, count: capacity)
            var keyOfRow = [Int64](repeating: 0, count: capacity)
            var memberOfRow = [Int32](repeating: 0, count: capacity)
            try stream.download(into: &stamp, from: stamps.address)
            try stream.download(into: &keyOfRow, from: rowKeys.address)
            try stream.download(into: &memberOfRow, from: rowMembers.address)
            let rows = (0..<capacity).filter { stamp[$0] != UInt32.max }
            let (vectors, found) = try fetch(keys: rows.map { keyOfRow[$0] }, members: rows.map { memberOfRow[$0] }, from: lower)
            // A key gone from the tier below keeps its cached vector until evicted.
            let keep = rows.indices.filter { found[$0] }
            guard !keep.isEmpty else { statistics.refreshes += 1; return }
            let rowBuffer = try scratchBuffer("refreshRows", bytes: keep.count * 4)
            let vectorBuffer = try scratchBuffer("refreshVectors", bytes: keep.count * dim * 4)
            try stream.upload(keep.map { Int32(rows[$0]) }, to: rowBuffer.address)
            try stream.upload(keep.flatMap { vectors[($0 * dim)..<(($0 + 1) * dim)] }, to: vectorBuffer.address)
            try scatterRows.launch(grid: (keep.count * dim + 255) / 256, block: 256, stream: stream,
                                   [rowBuffer.address, vectorBuffer.address, Int32(keep.count), self.vectors.address])
            try stream.synchronize()
            statistics.refreshes += 1
        }
    }

    /// Refreshes every `interval` seconds after a first `delay` (`refresh_interval`, `refresh_delay`).
    public func startRefreshing(interval: Double, delay: Double) {
        guard interval > 0 else { return }
        let timer = DispatchSource.makeTimerSource(queue: insertQueue)
        timer.schedule(deadline: .now() + delay, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            try? self.device.makeCurrent()
            try? self.refresh()
        }
        timer.resume()
        refreshTimer = timer
    }
}
