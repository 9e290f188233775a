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
/// by the next lookup before its own, whichever comes first. Unlike HugeCTR's set-associative
/// cache, a cache whose capacity is at least the table's key count holds
/// every key once it has been seen: the index is open addressing over twice
/// as many slots as rows, so no key is turned away by a full set.
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

    // Device state.
    let slots: DeviceBuffer<UInt64>
    let vectors: DeviceBuffer<Float>
    let stamps: DeviceBuffer<UInt32>
    let defaults: DeviceBuffer<Float>
    let hostDefaults: [Float]
    let missCount: DeviceBuffer<UInt32>
    let lookupKernel: CUDAKernel
    let scatterRows: CUDAKernel
    let scatterSlots: CUDAKernel
    let stampRows: CUDAKernel
    let gatherKeys: CUDAKernel
    let copyRows: CUDAKernel
    let stampHistogram: CUDAKernel
    let stampSelect: CUDAKernel
    let stampRestart: CUDAKernel

    // The host's mirror of the index, and the owner of each row.
    var index: GPUTableIndex
    var rowOwner: [(key: Int64, member: Int)?]
    var freeRows: [Int32]
    var epoch: UInt32 = 1
    /// No held row's stamp is older than this epoch (rows older were evicted).
    var stampFloor: UInt32 = 0
    /// Misses answered with the default value whose insert has not run yet:
    /// the background queue applies them, or the next lookup first if it
    /// takes the lock sooner (so that a busy caller cannot starve them).
    var pendingInserts: [(keys: [Int64], members: [Int])] = []
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
        /// Choosing and removing the rows to evict.
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
            guard table.dim == dim, table.memberCount == members, table.int64Keys == int64Keys, table.hostIndex != nil else {
                throw .unsupported("a uvm cache needs a table in mapped host memory of vec size \(dim), \(members) member(s) and \(int64Keys ? "int64" : "int32") keys; this one has vec size \(table.dim) and \(table.memberCount) member(s)\(table.hostIndex == nil ? ", in device memory" : "")")
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
        index = GPUTableIndex(emptyWithCapacity: 2 * self.capacity + 16, members: members)
        guard self.capacity < (1 << index.rowBits) - 1 else {
            throw .unsupported("a GPU cache of \(members) members holds at most \((1 << index.rowBits) - 2) rows")
        }
        rowOwner = Array(repeating: nil, count: self.capacity)
        freeRows = (0..<Int32(self.capacity)).reversed()
        scratch = DeviceScratch(device: device)
        stream = try CUDAStream(device: device)
        insertStream = try CUDAStream(device: device)
        slots = try DeviceBuffer(device: device, count: index.capacity * 2)
        try slots.fill32(0)
        vectors = try DeviceBuffer(device: device, count: self.capacity * dim)
        stamps = try DeviceBuffer(device: device, count: self.capacity)
        try stamps.fill32(UInt32.max)  // every row free (HPS_FREE_ROW)
        self.defaults = try DeviceBuffer(device: device, copying: defaults)
        hostDefaults = defaults
        missCount = try DeviceBuffer(device: device, count: 1)
        let module = try kernels.module(dim: dim, int64Keys: int64Keys)
        lookupKernel = try module.kernel("hps_lookup")
        scatterRows = try module.kernel("hps_scatter_rows")
        scatterSlots = try module.kernel("hps_scatter_slots")
        stampRows = try module.kernel("hps_stamp_rows")
        gatherKeys = try module.kernel("hps_gather_keys")
        copyRows = try module.kernel("hps_copy_rows")
        stampHistogram = try module.kernel("hps_stamp_histogram")
        stampSelect = try module.kernel("hps_stamp_select")
        stampRestart = try module.kernel("hps_stamp_restart")
    }

    deinit {
        refreshTimer?.cancel()
        insertQueue.sync {}
    }

    /// Keys held.
    public var count: Int { lock.withReadLock { index.count } }

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
                                keysPerSample: keysPerSample, hostKeys: keys)
    }

    /// Looks up keys already on the device (int64 or uint32, as the cache was
    /// made) into a device output; the keys are read back only when some miss.
    public func lookup(deviceKeys: UInt64, count n: Int, runs: [(member: Int, count: Int)], output: UInt64,
                       layout: GPUStaticTable.Layout = .keyOrder, keysPerSample: Int = 1,
                       hostKeys: [Int64]? = nil) throws -> LookupReport {
        lock.lockWrite()
        return try lookupLocked(deviceKeys: deviceKeys, count: n, runs: runs, output: output, layout: layout,
                                keysPerSample: keysPerSample, hostKeys: hostKeys)
    }

    /// The lookup, entered holding the lock, which it releases before returning.
    private func lookupLocked(deviceKeys: UInt64, count n: Int, runs: [(member: Int, count: Int)], output: UInt64,
                              layout: GPUStaticTable.Layout, keysPerSample: Int, hostKeys: [Int64]?) throws -> LookupReport {
        var unlocked = false
        defer { if !unlocked { lock.unlock() } }
        guard n > 0 else { return LookupReport(keys: 0, hits: 0, filled: true) }
        applyPendingInserts(stream: stream)
        var starts = [Int32](repeating: 0, count: runs.count + 1)
        for (r, run) in runs.enumerated() { starts[r + 1] = starts[r] + Int32(run.count) }
        guard Int(starts[runs.count]) == n else {
            throw CUDAError.unsupported("the runs hold \(starts[runs.count]) keys but \(n) keys were given")
        }
        epoch &+= 1
        if epoch >= UInt32.max - 1 {
            // Four billion lookups: start the epochs again (UInt32.max marks a free row).
            try stampRestart.launch(grid: (capacity + 255) / 256, block: 256, stream: stream, [stamps.address, Int32(capacity)])
            epoch = 2
            stampFloor = 0
        }
        let runBuffer = try scratchBuffer("runs", bytes: (2 * runs.count + 1) * 4)
        let missBuffer = try scratchBuffer("missIndex", bytes: n * 4)
        try stream.upload(starts + runs.map { Int32($0.member) }, to: runBuffer.address)
        try device.driver.check(device.driver.cuMemsetD32Async(missCount.address, 0, 1, stream.handle), "cuMemsetD32Async")
        try LookupLaunch(keys: deviceKeys, count: n, runStarts: runBuffer.address,
                         runMembers: runBuffer.address + UInt64(4 * (runs.count + 1)), runs: runs.count,
                         slots: slots.address, capacity: index.capacity, rowBits: index.rowBits, vectors: vectors.address,
                         defaults: defaults.address, output: output, layout: layout, keysPerSample: keysPerSample,
                         misses: missCount.address, stamps: stamps.address, epoch: epoch,
                         missIndex: missBuffer.address).launch(lookupKernel, device: device, stream: stream)
        var missHolder: [UInt32] = [0]
        try stream.download(into: &missHolder, from: missCount.address)
        let misses = missHolder[0]
        statistics.keys += n
        statistics.hits += n - Int(misses)
        guard misses > 0 else { return LookupReport(keys: n, hits: n, filled: true) }
        let missStart = MonotonicClock.nanoseconds()
        defer { statistics.missNanoseconds += MonotonicClock.nanoseconds() - missStart }

        var unsorted = [Int32](repeating: 0, count: Int(misses))
        try stream.download(into: &unsorted, from: missBuffer.address)
        // The missing keys: from the caller's array, or gathered on the device
        // so that only they come back.
        var missKeys = [Int64](repeating: 0, count: unsorted.count)
        if let hostKeys {
            for (k, i) in unsorted.enumerated() { missKeys[k] = hostKeys[Int(i)] }
        } else {
            let gathered = try scratchBuffer("missKeys", bytes: unsorted.count * 8)
            try gatherKeys.launch(grid: (unsorted.count + 255) / 256, block: 256, stream: stream,
                                  [deviceKeys, missBuffer.address, Int32(unsorted.count), gathered.address])
            if int64Keys {
                try stream.download(into: &missKeys, from: gathered.address)
            } else {
                var narrow = [UInt32](repeating: 0, count: unsorted.count)
                try stream.download(into: &narrow, from: gathered.address)
                missKeys = narrow.map { Int64($0) }
            }
        }
        let order = unsorted.indices.sorted { unsorted[$0] < unsorted[$1] }
        let missed = order.map { unsorted[$0] }
        let missedKeys = order.map { missKeys[$0] }
        // The distinct missing (member, key) pairs, and where each miss goes.
        var position: [Int: Int] = [:]
        var uniqueKeys: [Int64] = [], uniqueMembers: [Int] = []
        var missUnique: [Int] = [], missOutput: [Int32] = []
        var r = 0
        for (k, i32) in missed.enumerated() {
            let i = Int(i32)
            while Int(starts[r + 1]) <= i { r += 1 }
            let member = runs[r].member, key = missedKeys[k]
            let id = Self.pairID(key, member)
            let u: Int
            if let known = position[id], uniqueKeys[known] == key, uniqueMembers[known] == member {
                u = known
            } else {
                u = uniqueKeys.count
                position[id] = u
                uniqueKeys.append(key)
                uniqueMembers.append(member)
            }
            missUnique.append(u)
            var o = i
            if layout == .samplesByRun {
                let j = i - Int(starts[r]), s = j / keysPerSample
                o = (s * runs.count + r) * keysPerSample + j % keysPerSample
            }
            missOutput.append(Int32(o))
        }
        if case .mappedTable(let table) = source {
            // uvm: every miss is answered from the mapped table now (or its default) and inserted.
            let sourceRows = uniqueKeys.indices.map { Int64(table.hostRow(of: uniqueKeys[$0], member: uniqueMembers[$0]) ?? -1) }
            var plan = [Int64](repeating: 0, count: 3 * missUnique.count)
            for (k, u) in missUnique.enumerated() {
                plan[3 * k] = sourceRows[u]
                plan[3 * k + 1] = Int64(missOutput[k])
                plan[3 * k + 2] = Int64(uniqueMembers[u])
            }
            try copy(plan: plan, from: table.vectorsAddress, into: output, stream: stream)
            try insert(keys: uniqueKeys, members: uniqueMembers, found: sourceRows.map { $0 >= 0 }, stream: stream) { rows, items in
                try copy(rows: rows, of: items, from: table, sourceRows: sourceRows, stream: stream)
            }
            try stream.synchronize()
            statistics.synchronousFills += 1
            return LookupReport(keys: n, hits: n - Int(misses), filled: true)
        }
        guard case .tier(let lower) = source else { fatalError("unreachable: the sources are a tier or a mapped table") }
        let hitRate = 1 - Double(misses) / Double(n)
        if hitRate < hitRateThreshold {
            let (fetched, found) = try fetch(keys: uniqueKeys, members: uniqueMembers, from: lower)
            // Fill the output now: each miss gets its key's vector (or the default).
            var rows = [Float](repeating: 0, count: missed.count * dim)
            for (k, u) in missUnique.enumerated() {
                rows.replaceSubrange((k * dim)..<((k + 1) * dim), with: fetched[(u * dim)..<((u + 1) * dim)])
            }
            try scatter(rows: missOutput, vectors: rows, into: output, stream: stream)
            try insert(keys: uniqueKeys, members: uniqueMembers, vectors: fetched, found: found, stream: stream)
            try stream.synchronize()
            statistics.synchronousFills += 1
            return LookupReport(keys: n, hits: n - Int(misses), filled: true)
        }
        // Defaults now (the kernel wrote them); reading the misses from the
        // tier below and inserting them runs after this call returns.
        statistics.asynchronousInserts += 1
        pendingInserts.append((uniqueKeys, uniqueMembers))
        unlocked = true
        lock.unlock()
        insertQueue.async { [self] in
            // Driver calls need the device's context current on this thread.
            try? device.makeCurrent()
            lock.lockWrite()
            defer { lock.unlock() }
            applyPendingInserts(stream: insertStream)
        }
        return LookupReport(keys: n, hits: n - Int(misses), filled: false)
    }

    /// Reads the pending misses from the tier below and inserts them; entered
    /// holding the lock. A failure is counted, and the keys stay missing.
    private func applyPendingInserts(stream: CUDAStream) {
        guard !pendingInserts.isEmpty, case .tier(let lower) = source else { return }
        let work = pendingInserts
        pendingInserts = []
        do {
            for (keys, members) in work {
                let (vectors, found) = try fetch(keys: keys, members: members, from: lower)
                try insert(keys: keys, members: members, vectors: vectors, found: found, stream: stream)
            }
            try stream.synchronize()
        } catch {
            statistics.failedInserts += 1
            statistics.lastInsertError = "\(error)"
        }
    }

    /// Waits for inserts started by earlier lookups.
    public func waitForInserts() {
        insertQueue.sync {}
    }

    static func pairID(_ key: Int64, _ member: Int) -> Int {
        Int(truncatingIfNeeded: KeyHash.hash(key, member: member))
    }

    /// Reads keys from the tier below: their vectors (the default where absent) and which were found.
    func fetch(keys: [Int64], members: [Int], from lower: any EmbeddingStoreTable) throws -> (vectors: [Float], found: [Bool]) {
        let start = MonotonicClock.nanoseconds()
        defer { statistics.fetchNanoseconds += MonotonicClock.nanoseconds() - start }
        var vectors = [Float](repeating: 0, count: keys.count * dim)
        var found = [Bool](repeating: true, count: keys.count)
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeMutableBufferPointer { v in
                var runs: [LookupRun] = []
                var j = 0
                while j < keys.count {
                    var end = j + 1
                    while end < keys.count && members[end] == members[j] { end += 1 }
                    runs.append(LookupRun(member: members[j], keys: k.baseAddress! + j, count: end - j,
                                          output: v.baseAddress! + j * dim))
                    j = end
                }
                var missed = [Int](repeating: 0, count: keys.count)
                let misses = hostDefaults.withUnsafeBufferPointer { d in
                    missed.withUnsafeMutableBufferPointer { m in
                        runs.withUnsafeBufferPointer {
                            lower.lookup($0, defaults: d, missed: m.baseAddress, parallelism: Self.fetchParallelism(keys.count))
                        }
                    }
                }
                for i in 0..<misses { found[missed[i]] = false }
                _ = v
            }
        }
        return (vectors, found)
    }

    /// Threads for reading `count` misses from the tier below: one per 4,096 keys, at most every core.
    static func fetchParallelism(_ count: Int) -> Int {
        max(1, min(availableCores, count / 4096))
    }

    /// Inserts found keys with their vectors from the host.
    func insert(keys: [Int64], members: [Int], vectors: [Float], found: [Bool], stream: CUDAStream) throws {
        try insert(keys: keys, members: members, found: found, stream: stream) { rows, items in
            var rowVectors: [Float] = []
            rowVectors.reserveCapacity(items.count * dim)
            for i in items { rowVectors.append(contentsOf: vectors[(i * dim)..<((i + 1) * dim)]) }
            try scatter(rows: rows, vectors: rowVectors, into: self.vectors.address, stream: stream)
        }
    }

    /// Copies the mapped table's rows of keys `items` into the cache's `rows`.
    func copy(rows: [Int32], of items: [Int], from table: GPUStaticTable, sourceRows: [Int64], stream: CUDAStream) throws(CUDAError) {
        var plan = [Int64](repeating: 0, count: 3 * rows.count)
        for (k, i) in items.enumerated() {
            plan[3 * k] = sourceRows[i]
            plan[3 * k + 1] = Int64(rows[k])
        }
        try copy(plan: plan, from: table.vectorsAddress, into: vectors.address, stream: stream)
    }

    /// Runs `hps_copy_rows` over (source row, target row, member) triples.
    func copy(plan: [Int64], from source: UInt64, into target: UInt64, stream: CUDAStream) throws(CUDAError) {
        let count = plan.count / 3
        guard count > 0 else { return }
        let buffer = try upload(plan, name: "copyPlan", stream: stream)
        let threads = count * dim
        try copyRows.launch(grid: (threads + 255) / 256, block: 256, stream: stream,
                            [buffer, Int32(count), source, defaults.address, target])
    }

    /// Inserts found keys, evicting the least recently used rows when full;
    /// `write(rows, items)` puts the vectors of keys `items` into cache rows `rows`.
    func insert(keys: [Int64], members: [Int], found: [Bool], stream: CUDAStream,
                write: (_ rows: [Int32], _ items: [Int]) throws -> Void) throws {
        var newKeys: [Int] = []
        for i in keys.indices where found[i] && index.row(of: keys[i], member: members[i]) == nil {
            newKeys.append(i)
        }
        if newKeys.count > capacity { newKeys.removeLast(newKeys.count - capacity) }
        guard !newKeys.isEmpty else { return }
        let shortfall = newKeys.count - freeRows.count
        if shortfall > 0 { try evict(shortfall, stream: stream) }
        var rows: [Int32] = []
        rows.reserveCapacity(newKeys.count)
        for i in newKeys {
            let row = freeRows.removeLast()
            index.insert(keys[i], member: members[i], row: Int(row))
            rowOwner[Int(row)] = (keys[i], members[i])
            rows.append(row)
        }
        try write(rows, newKeys)
        let rowBuffer = try upload(rows, name: "stampRows", stream: stream)
        try stampRows.launch(grid: (rows.count + 255) / 256, block: 256, stream: stream,
                             [rowBuffer, Int32(rows.count), stamps.address, epoch])
        try uploadDirtySlots(stream: stream)
    }

    /// Frees `count` rows: those with the oldest stamps. The GPU counts the
    /// rows per epoch of last use and picks them, so the host touches only
    /// the rows it frees, not every row of the cache.
    func evict(_ count: Int, stream: CUDAStream) throws {
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
        let counters = try scratchBuffer("evictCounters", bytes: 8)
        let list = try scratchBuffer("evictList", bytes: count * 4)
        try device.driver.check(device.driver.cuMemsetD32Async(counters.address, 0, 2, stream.handle), "cuMemsetD32Async")
        try stampSelect.launch(grid: grid, block: 256, stream: stream,
                               [stamps.address, Int32(capacity), lo, Int32(bins), Int32(cutoff), UInt32(atCutoff),
                                counters.address, list.address])
        var listed: [UInt32] = [0, 0]
        try stream.download(into: &listed, from: counters.address)
        var rows = [Int32](repeating: 0, count: Int(listed[1]))
        if !rows.isEmpty { try stream.download(into: &rows, from: list.address) }
        for row in rows {
            guard let owner = rowOwner[Int(row)] else { continue }
            index.remove(owner.key, member: owner.member)
            rowOwner[Int(row)] = nil
            freeRows.append(row)
        }
        if cutoff > 0 { stampFloor = lo + UInt32(cutoff) }
        statistics.evictions += rows.count
    }

    /// Copies rows of vectors to `rows` of the table at `target`.
    func scatter(rows: [Int32], vectors rowVectors: [Float], into target: UInt64, stream: CUDAStream) throws(CUDAError) {
        guard !rows.isEmpty else { return }
        let rowBuffer = try upload(rows, name: "scatterRows", stream: stream)
        let vectorBuffer = try upload(rowVectors, name: "scatterVectors", stream: stream)
        let threads = rows.count * dim
        try scatterRows.launch(grid: (threads + 255) / 256, block: 256, stream: stream,
                               [rowBuffer, vectorBuffer, Int32(rows.count), target])
    }

    /// Writes the slots the host changed into the device index.
    func uploadDirtySlots(stream: CUDAStream) throws(CUDAError) {
        let words = index.takeDirtySlots()
        guard !words.isEmpty else { return }
        let buffer = try upload(words, name: "slotWords", stream: stream)
        let count = words.count / 3
        try scatterSlots.launch(grid: (count + 255) / 256, block: 256, stream: stream, [buffer, Int32(count), slots.address])
    }

    /// Uploads an array to a named scratch buffer, in order on `stream`.
    func upload<T>(_ values: [T], name: String, stream: CUDAStream) throws(CUDAError) -> UInt64 {
        // Earlier work on the stream may still read this scratch buffer (or the one it replaces).
        try stream.synchronize()
        let buffer = try scratchBuffer(name, bytes: values.count * MemoryLayout<T>.stride)
        try stream.upload(values, to: buffer.address)
        return buffer.address
    }

    /// Fills the cache at start with up to `fraction` of its capacity from
    /// `keys` (per member), as `init_ec` and `cache_refresh_percentage_per_iteration` ask.
    public func prefill(keys: [[Int64]], fraction: Double) throws {
        let budget = min(capacity, Int((Double(capacity) * fraction).rounded(.up)))
        var chosen: [Int64] = [], members: [Int] = []
        var cursor = [Int](repeating: 0, count: keys.count)
        while chosen.count < budget {
            var progressed = false
            for m in keys.indices where cursor[m] < keys[m].count && chosen.count < budget {
                chosen.append(keys[m][cursor[m]])
                members.append(m)
                cursor[m] += 1
                progressed = true
            }
            if !progressed { break }
        }
        // Grouped by member, as the tier below takes runs.
        let order = chosen.indices.sorted { members[$0] < members[$1] }
        let sortedKeys = order.map { chosen[$0] }, sortedMembers = order.map { members[$0] }
        switch source {
        case .tier(let lower):
            let (vectors, found) = try fetch(keys: sortedKeys, members: sortedMembers, from: lower)
            try lock.withWriteLock {
                try insert(keys: sortedKeys, members: sortedMembers, vectors: vectors, found: found, stream: stream)
                try stream.synchronize()
            }
        case .mappedTable(let table):
            let sourceRows = sortedKeys.indices.map { Int64(table.hostRow(of: sortedKeys[$0], member: sortedMembers[$0]) ?? -1) }
            try lock.withWriteLock {
                try insert(keys: sortedKeys, members: sortedMembers, found: sourceRows.map { $0 >= 0 }, stream: stream) { rows, items in
                    try copy(rows: rows, of: items, from: table, sourceRows: sourceRows, stream: stream)
                }
                try stream.synchronize()
            }
        }
    }

    /// Re-reads every cached key from the tier below (online updates reach
    /// the GPU this way).
    public func refresh() throws {
        // The mapped table is read-only: a uvm cache's rows are always current.
        guard case .tier(let lower) = source else { return }
        try lock.withWriteLock {
            var keys: [Int64] = [], members: [Int] = [], rows: [Int32] = []
            for member in 0..<memberCount {
                for row in 0..<capacity {
                    if let owner = rowOwner[row], owner.member == member {
                        keys.append(owner.key)
                        members.append(member)
                        rows.append(Int32(row))
                    }
                }
            }
            let (vectors, found) = try fetch(keys: keys, members: members, from: lower)
            // A key gone from the tier below keeps its cached vector until evicted.
            let keep = keys.indices.filter { found[$0] }
            try scatter(rows: keep.map { rows[$0] },
                        vectors: keep.flatMap { vectors[($0 * dim)..<(($0 + 1) * dim)] }, into: self.vectors.address, stream: stream)
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
