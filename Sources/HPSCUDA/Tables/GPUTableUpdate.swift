package import HPS

/// An online update's rows on the device, as `hps_table_update` and
/// `hps_cache_update` take them: distinct keys (a repeated key keeps its last
/// row, as the tiers below do), their vectors, and two zeroed counters of
/// rows written (a uvm cache writes its table and its cached rows, counted
/// apart). Staged in a table's scratch buffers, on its stream.
struct StagedUpdate {
    /// Device address of `count` Int64 keys.
    var keys: UInt64
    /// Device address of `count × dim` floats.
    var vectors: UInt64
    /// Device address of two UInt32 counters, zeroed.
    var counters: UInt64
    /// Distinct keys.
    var count: Int
    /// The rows of the distinct keys, in order, when a key repeats (else every row).
    private var distinctRows: [Int]?

    /// Copies the update to the device (from pageable memory: the driver
    /// stages the bytes before returning).
    init(keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>, dim: Int,
         scratch: DeviceScratch, stream: CUDAStream) throws(CUDAError) {
        // With a repeated key: the last row of each key, in the order of their last rows.
        distinctRows = nil
        if Self.hasRepeats(keys) {
            var last: [Int64: Int] = [:]
            for (i, key) in keys.enumerated() { last[key] = i }
            distinctRows = last.values.sorted()
        }
        count = distinctRows?.count ?? keys.count
        self.keys = try scratch.buffer("updateKeys", bytes: max(1, count) * 8).address
        self.vectors = try scratch.buffer("updateVectors", bytes: max(1, count * dim) * 4).address
        counters = try scratch.buffer("updateCounters", bytes: 8).address
        if let rows = distinctRows {
            var distinctVectors = [Float]()
            distinctVectors.reserveCapacity(rows.count * dim)
            for row in rows { distinctVectors += vectors[(row * dim)..<((row + 1) * dim)] }
            try stream.upload(rows.map { keys[$0] }, to: self.keys)
            try stream.upload(distinctVectors, to: self.vectors)
        } else if count > 0 {
            try stream.copy(to: self.keys, from: UnsafeRawPointer(keys.baseAddress!), bytes: count * 8)
            try stream.copy(to: self.vectors, from: UnsafeRawPointer(vectors.baseAddress!), bytes: count * dim * 4)
        }
        try stream.device.driver.check(stream.device.driver.cuMemsetD32Async(counters, 0, 2, stream.handle), "cuMemsetD32Async")
    }

    /// Whether a key occurs twice: each key's index in an open-addressing
    /// table of twice as many slots (a `Set` of the keys took about as long
    /// as copying their vectors to the device).
    static func hasRepeats(_ keys: UnsafeBufferPointer<Int64>) -> Bool {
        guard keys.count > 1 else { return false }
        var capacity = 2
        while capacity < 2 * keys.count { capacity <<= 1 }
        let slots = UnsafeMutableBufferPointer<Int32>.allocate(capacity: capacity)
        defer { slots.deallocate() }
        slots.initialize(repeating: -1)
        let mask = capacity - 1
        for (i, key) in keys.enumerated() {
            var slot = Int(truncatingIfNeeded: KeyHash.hash(key, member: 0)) & mask
            while slots[slot] >= 0 {
                if keys[Int(slots[slot])] == key { return true }
                slot = (slot + 1) & mask
            }
            slots[slot] = Int32(i)
        }
        return false
    }

    /// Device address of the update's rows stored as `storage` says, for a
    /// table that stores them so: quantized here on the host (`VectorCodec`,
    /// as the CPU tiers do) and copied to the device. fp32: `vectors`.
    /// - Parameter vectors: the update's vectors, as given to `init`.
    /// - Throws: `CUDAError.storage` for an element `storage` cannot hold.
    func rows(storedAs storage: VectorStorage, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
              dim: Int, table: String, scratch: DeviceScratch, stream: CUDAStream) throws(CUDAError) -> UInt64 {
        guard storage != .fp32 else { return self.vectors }
        let rows = distinctRows
        let encoded = try EncodedRows.forDevice(vectors.baseAddress!, count: count, codec: VectorCodec(storage: storage, dim: dim),
                                                table: table, sourceRow: { rows?[$0] ?? $0 }, key: { keys[rows?[$0] ?? $0] })
        let address = try scratch.buffer("updateStoredRows", bytes: max(4, encoded.byteCount)).address
        // From pageable memory: the driver stages the bytes before returning.
        try stream.copy(to: address, from: UnsafeRawPointer(encoded.base), bytes: encoded.byteCount)
        return address
    }

    /// Device address of counter `index` (0 or 1).
    func counter(_ index: Int) -> UInt64 { counters + UInt64(4 * index) }

    /// The rows each counter counted, after the stream's work (waits for it).
    func written(on stream: CUDAStream) throws(CUDAError) -> (first: Int, second: Int) {
        var values: [UInt32] = [0, 0]
        try stream.download(into: &values, from: counters)
        return (Int(values[0]), Int(values[1]))
    }

    /// Threads per block and blocks of an update kernel: one warp per key.
    var grid: Int { (count * 32 + 255) / 256 }
}

extension GPUStaticTable {
    /// Writes a staged update into the rows this table holds, on `stream`,
    /// counting them in the update's counter `counter`.
    /// - Parameter rows: device address of the update's rows as this table
    ///   stores them (`StagedUpdate.rows(storedAs:…)`).
    func launchUpdate(_ update: StagedUpdate, rows: UInt64, member: Int, counter: Int = 0, stream: CUDAStream) throws(CUDAError) {
        guard update.count > 0 else { return }
        let kernel = try module().kernel("hps_table_update")
        try kernel.launch(grid: update.grid, block: 256, stream: stream,
            update.keys, Int32(member), Int32(update.count), slotKeys.address, blocks.address, slotMembersAddress,
            UInt32(capacity), rows, vectors.address, update.counter(counter))
    }

    /// Replaces the vectors of the keys the table holds, in place (device
    /// memory, or the mapped host memory of a `uvm` table). A key it does not
    /// hold counts as unheld: the table keeps the keys it was built with,
    /// and lookups answer such a key from the tiers below.
    ///
    /// The update takes turns with cache lookups (the same lock and stream),
    /// so a lookup never reads a row half written; lookups of device
    /// addresses on a caller's stream (`lookup(keys:count:…stream:)`) are not
    /// ordered with it.
    package func update(member: Int, keys: UnsafeBufferPointer<Int64>,
                       vectors: UnsafeBufferPointer<Float>) throws(LookupError) -> CacheUpdate {
        guard !keys.isEmpty else { return CacheUpdate() }
        let index = kernels.device.index
        return try lookupState.withLock { (state) throws(LookupError) -> CacheUpdate in
            do throws(CUDAError) {
                try kernels.device.makeCurrent()
                if state.stage == nil { state.stage = try GPULookupStage(device: kernels.device) }
                let stage = state.stage!
                let staged = try StagedUpdate(keys: keys, vectors: vectors, dim: dim, scratch: stage.scratch, stream: stage.stream)
                let stored = try staged.rows(storedAs: storage, keys: keys, vectors: vectors, dim: dim, table: name,
                                             scratch: stage.scratch, stream: stage.stream)
                try launchUpdate(staged, rows: stored, member: member, stream: stage.stream)
                let rows = try staged.written(on: stage.stream).first
                if staged.count > rows { state.unheldBelow = true }
                return CacheUpdate(rows: rows, unheldKeys: staged.count - rows)
            } catch {
                throw .device(reason: "GPU \(index) failed an update of \(name): \(error)")
            }
        }
    }
}

extension GPUDynamicCache {
    /// Replaces the cached rows of the update's keys in place; keys not
    /// cached are left to the tiers below (which took the update first), or,
    /// for a uvm cache, written into its mapped table too (a key that table
    /// does not hold counts as unheld, as for a static table).
    ///
    /// Holding the cache's lock: a miss being inserted meanwhile read the
    /// tiers below either before they took the update (and is inserted
    /// before this runs, then replaced) or after.
    package func update(member: Int, keys: UnsafeBufferPointer<Int64>,
                       vectors: UnsafeBufferPointer<Float>) throws(LookupError) -> CacheUpdate {
        guard !keys.isEmpty else { return CacheUpdate() }
        lock.lockWrite()
        defer { lock.unlock() }
        do throws(CUDAError) {
            try cuda.makeCurrent()
            let staged = try StagedUpdate(keys: keys, vectors: vectors, dim: dim, scratch: stage.scratch, stream: stream)
            // The cached rows are what the tiers below hold: the update quantized as they
            // quantize it (a uvm cache's table stores rows as the cache does).
            let rows = try staged.rows(storedAs: storage, keys: keys, vectors: vectors, dim: dim, table: name,
                                       scratch: stage.scratch, stream: stream)
            // The mapped table (uvm) counts in counter 1, the cached rows in counter 0; one wait for both.
            let mapped: GPUStaticTable?
            if case .mappedTable(let table) = source { mapped = table } else { mapped = nil }
            if let mapped {
                try mapped.launchUpdate(staged, rows: rows, member: member, counter: 1, stream: stream)
            }
            try cacheUpdate.launch(grid: staged.grid, block: 256, stream: stream,
                staged.keys, Int32(member), Int32(staged.count), slots.address, UInt32(slotCapacity), UInt32(rowBits),
                rows, self.vectors.address, staged.counter(0))
            let written = try staged.written(on: stream)
            return CacheUpdate(rows: written.first, unheldKeys: mapped == nil ? 0 : staged.count - written.second)
        } catch {
            throw .device(reason: "GPU \(cuda.index) failed an update of \(name): \(error)")
        }
    }
}
