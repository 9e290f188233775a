import HPS

/// What a GPU cache needs for one lookup from host keys: its stream, and the
/// device and pinned buffers that every lookup reuses. One per cache, used
/// under the cache's lock.
///
/// A lookup's input and output sit at the same offsets in one device buffer
/// and one pinned buffer (`StagedLookup`), so that the keys and the run
/// arrays go to the device in one copy (none when the keys are on the device
/// and the runs are those already there), and the rows come back in one
/// copy; the miss count comes back without a copy (`GPUMissCounter`).
final class GPULookupStage {
    let device: CUDADevice
    let stream: CUDAStream
    let scratch: DeviceScratch
    let pinned: PinnedScratch
    let missCounter: GPUMissCounter

    /// What the device buffer holds from the last upload: its address, where
    /// the run arrays start, and the run arrays (starts, then members). A
    /// lookup from device keys with the same runs at the same place uploads nothing.
    private var uploadedRuns: (address: UInt64, startsOffset: Int, words: [Int32])?

    /// Orders the stream after a caller's stream (made at the first lookup from device keys).
    private var keysWritten: CUDAEvent?
    /// Recorded after the upload of a lookup that returned without
    /// synchronizing the stream: the next staging waits for it before
    /// writing the pinned buffer again.
    private var uploaded: CUDAEvent?
    private var uploadPending = false
    /// Recorded after such a lookup's kernel, for the caller's stream to wait on.
    private var finished: CUDAEvent?

    init(device: CUDADevice) throws(CUDAError) {
        self.device = device
        stream = try CUDAStream(device: device)
        scratch = DeviceScratch(device: device)
        pinned = PinnedScratch(device: device)
        missCounter = try GPUMissCounter(device: device)
    }

    /// The device address of a batch's device keys as one range, in the
    /// width the cache reads (`int64Keys`), after making the stream wait (on
    /// the device) for the work queued on the caller's stream before the
    /// call: the keys themselves when the runs' ranges follow one another,
    /// else a gathered copy on the stream.
    func deviceKeys(_ keys: [DeviceKeys], after caller: DeviceStream, int64Keys: Bool) throws(CUDAError) -> UInt64 {
        let width = int64Keys ? 8 : 4
        for range in keys where range.type.byteWidth != width {
            throw .deviceKeyWidth(given: range.type.byteWidth, expected: width)
        }
        if keysWritten == nil { keysWritten = try CUDAEvent(device: device, timing: false) }
        try keysWritten!.record(caller)
        try stream.wait(for: keysWritten!)
        let ranges = keys.filter { $0.count > 0 }
        guard let first = ranges.first else { return 0 }
        if zip(ranges, ranges.dropFirst()).allSatisfy({ $0.isFollowed(by: $1) }) { return first.start.address }
        let gathered = try scratch.buffer("deviceKeys", bytes: ranges.reduce(0) { $0 + $1.byteCount })
        var offset = 0
        for range in ranges {
            try stream.copy(to: gathered.address + UInt64(offset), from: range.start.address, bytes: range.byteCount)
            offset += range.byteCount
        }
        return gathered.address
    }

    /// `count` keys at `address` on the device (8-byte, or 4-byte unsigned),
    /// copied to the host after the stream's earlier work, as Int64: the keys
    /// of a lookup from device keys that the tiers below must answer.
    func hostKeys(at address: UInt64, count: Int, int64Keys: Bool) throws(CUDAError) -> [Int64] {
        if int64Keys {
            var keys = [Int64](repeating: 0, count: count)
            try stream.download(into: &keys, from: address)
            return keys
        }
        var narrow = [UInt32](repeating: 0, count: count)
        try stream.download(into: &narrow, from: address)
        return narrow.map { Int64($0) }
    }

    /// Writes `keys` (narrowed to UInt32 unless `int64Keys`; none when the
    /// keys are already on the device) and the run arrays into pinned memory
    /// and copies them to the device in one copy, on the stream; without keys
    /// or rows, when the device buffer holds these runs at this place from
    /// the last upload, nothing is copied.
    ///
    /// The pinned buffer is written on the host at once: the caller must have
    /// waited for the stream's earlier copies from it (every lookup ends by
    /// synchronizing the stream, so the next one finds it free).
    /// - Parameters:
    ///   - count: the keys, `keys.count` when keys are given.
    ///   - runs: (member, count) per run; the counts sum to `count`.
    ///   - rowBytes: room for the rows behind the run arrays (a host destination), or 0.
    func stage<Runs: RandomAccessCollection>(keys: UnsafeBufferPointer<Int64>?, count n: Int, int64Keys: Bool,
                                             runs: Runs, rowBytes: Int) throws(CUDAError) -> StagedLookup
        where Runs.Element == (member: Int, count: Int) {
        if uploadPending {
            try uploaded!.synchronize()
            uploadPending = false
        }
        let keyBytes = keys == nil ? 0 : n * (int64Keys ? 8 : 4)
        let layout = StagedLookup.Layout(keyBytes: keyBytes, runs: runs.count, rowBytes: rowBytes, keys: n)
        let device = try scratch.buffer("lookup", bytes: layout.deviceBytes)
        let host = try pinned.buffer("lookup", bytes: layout.pinnedBytes)
        if let keys {
            if int64Keys {
                host.copyMemory(from: UnsafeRawPointer(keys.baseAddress!), byteCount: keyBytes)
            } else {
                let narrow = host.assumingMemoryBound(to: UInt32.self)
                // The session checked that every key fits in 32 bits.
                for i in 0..<n { narrow[i] = UInt32(truncatingIfNeeded: keys[i]) }
            }
        }
        let starts = (host + layout.startsOffset).assumingMemoryBound(to: Int32.self)
        let members = (host + layout.membersOffset).assumingMemoryBound(to: Int32.self)
        var total = 0, r = 0
        starts[0] = 0
        for run in runs {
            members[r] = Int32(run.member)
            total += run.count
            starts[r + 1] = Int32(total)
            r += 1
        }
        guard total == n else { throw .runKeyCount(runs: total, keys: n) }
        let staged = StagedLookup(layout: layout, count: n, runs: runs.count, device: device.address, host: host,
                                  counter: missCounter)
        let words = UnsafeBufferPointer(start: starts, count: 2 * runs.count + 1)
        if keyBytes == 0, rowBytes == 0, let uploaded = uploadedRuns, uploaded.address == device.address,
           uploaded.startsOffset == layout.startsOffset, uploaded.words.elementsEqual(words) {
            return staged
        }
        try stream.copy(to: device.address, from: UnsafeRawPointer(host), bytes: layout.rowsOffset)
        uploadedRuns = (device.address, layout.startsOffset, Array(words))
        return staged
    }

    /// Ends a lookup without waiting for it: the caller's stream waits (on the
    /// device) for the work queued on this stream so far, and the next
    /// staging waits for this lookup's upload from the pinned buffer. Later
    /// work on this stream (the next lookup, an update) is ordered after it.
    func finishInStreamOrder(caller: DeviceStream) throws(CUDAError) {
        if uploaded == nil { uploaded = try CUDAEvent(device: device, timing: false) }
        if finished == nil { finished = try CUDAEvent(device: device, timing: false) }
        try finished!.record(stream)
        try finished!.makeWait(caller)
        try uploaded!.record(stream)
        uploadPending = true
    }

    /// Copies the rows back, on the stream.
    func downloadRows(_ staged: StagedLookup) throws(CUDAError) {
        try stream.copy(to: staged.hostRows, from: staged.rows, bytes: staged.layout.rowBytes)
    }

    /// The indices of the keys the lookup missed (in no order), downloaded
    /// into pinned memory after the stream's work; valid until the next call.
    func missIndices(_ staged: StagedLookup, misses: Int) throws(CUDAError) -> UnsafeBufferPointer<Int32> {
        let host = try pinned.buffer("missIndex", bytes: misses * 4)
        try stream.copy(to: host, from: staged.missIndex, bytes: misses * 4)
        try stream.synchronize()
        return UnsafeBufferPointer(start: host.assumingMemoryBound(to: Int32.self), count: misses)
    }
}

/// One lookup's buffers, at the same offsets on the device and in pinned
/// memory: the keys, the run starts ((runs + 1) Int32), the run members
/// ((runs) Int32), the rows (for a host destination, 16-byte aligned), and
/// on the device only the misses' key indices; and the stage's miss counter.
struct StagedLookup {
    struct Layout {
        var startsOffset: Int
        var membersOffset: Int
        var rowsOffset: Int
        var rowBytes: Int
        var missIndexOffset: Int
        var deviceBytes: Int
        var pinnedBytes: Int { rowsOffset + rowBytes }

        init(keyBytes: Int, runs: Int, rowBytes: Int, keys: Int) {
            startsOffset = (keyBytes + 3) / 4 * 4
            membersOffset = startsOffset + (runs + 1) * 4
            rowsOffset = (membersOffset + runs * 4 + 15) / 16 * 16
            self.rowBytes = rowBytes
            missIndexOffset = (rowsOffset + rowBytes + 15) / 16 * 16
            deviceBytes = missIndexOffset + max(1, keys) * 4
        }
    }

    let layout: Layout
    /// Keys.
    let count: Int
    /// Runs.
    let runs: Int
    /// The device buffer's address.
    let device: UInt64
    /// The pinned buffer.
    let host: UnsafeMutableRawPointer
    /// Where the kernel counts the misses (`hps_lookup`'s `misses` and `hostMisses`).
    let counter: GPUMissCounter

    var keys: UInt64 { device }
    var runStarts: UInt64 { device + UInt64(layout.startsOffset) }
    var runMembers: UInt64 { device + UInt64(layout.membersOffset) }
    /// The device word holding the misses' count, for the kernels after the lookup.
    var missCount: UInt64 { counter.published }
    var rows: UInt64 { device + UInt64(layout.rowsOffset) }
    var missIndex: UInt64 { device + UInt64(layout.missIndexOffset) }
    var hostRows: UnsafeMutableRawPointer { host + layout.rowsOffset }

    /// The misses the kernel counted, once the stream is synchronized.
    var misses: Int { counter.count }

    /// Copies the downloaded rows to each run's output, run after run.
    func copyRows(to runs: UnsafeBufferPointer<LookupRun>, vecSize: Int) {
        var source = UnsafeRawPointer(hostRows).assumingMemoryBound(to: Float.self)
        for run in runs {
            run.output.update(from: source, count: run.count * vecSize)
            source += run.count * vecSize
        }
    }
}

/// Where a GPU cache writes a batch's rows, checked once per lookup.
struct GPUOutput {
    /// The device destination, or nil for the runs' host outputs.
    var device: DevicePointer<Float>?
    var layout: GPUStaticTable.Layout
    var keysPerSample: Int

    /// The batch's destination, checked against the cache's device.
    /// - Throws: `LookupError.destination` for memory of another GPU, or a
    ///   sample-major layout the runs do not fit.
    init(_ batch: CacheBatch, device index: Int, what: String) throws(LookupError) {
        device = batch.device
        switch batch.layout {
        case .runs:
            layout = .keyOrder
            keysPerSample = 1
        case let .samplesByRun(k):
            guard batch.device != nil else {
                throw .destination(reason: "a host destination takes the rows run after run; the sample-major layout is for device memory")
            }
            // Row (s × runs + r) × k + j % k covers the output only when every run holds the same samples × k keys.
            let first = batch.runs.first?.count ?? 0
            guard k > 0, first % k == 0, batch.runs.allSatisfy({ $0.count == first }) else {
                throw .destination(reason: "the sample-major layout needs every table's keys to be the same number of samples × \(k) keys per sample, but \(what) got runs of \(batch.runs.map(\.count)) keys")
            }
            layout = .samplesByRun
            keysPerSample = k
        }
        if let pointer = batch.device, pointer.device != index {
            throw .destination(reason: "the destination is memory of GPU \(pointer.device) but \(what) lives on GPU \(index)")
        }
    }
}

extension TierHits {
    /// Counts every key of the runs as answered by the top tier (the cache);
    /// the misses are then moved to where they were answered.
    mutating func addAnswered(_ runs: UnsafeBufferPointer<LookupRun>) {
        for run in runs { answered[0][run.member] += run.count }
    }

    /// Moves `count` keys of `member` from the cache to tier `tier`
    /// (`nil`: to the keys answered with the default).
    mutating func moveFromCache(member: Int, count: Int, to tier: Int?) {
        guard count > 0 else { return }
        answered[0][member] -= count
        if let tier, tier < answered.count {
            answered[tier][member] += count
        } else {
            missing[member] += count
        }
    }
}

/// Where a batch's runs start among its keys, to find the run that holds a flat key index.
struct RunStarts {
    /// (runs + 1) offsets: run r holds keys starts[r] ..< starts[r + 1].
    let starts: [Int]

    init(_ runs: UnsafeBufferPointer<LookupRun>) {
        var starts = [Int](repeating: 0, count: runs.count + 1)
        for (r, run) in runs.enumerated() { starts[r + 1] = starts[r] + run.count }
        self.starts = starts
    }

    /// The run holding key `index`: the last start at or below it.
    func run(holding index: Int) -> Int {
        var lo = 0, hi = starts.count - 2
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

/// Per member, how many of the missed key indices (flat, into the batch's keys) fall in its runs.
func missesPerMember(_ indices: UnsafeBufferPointer<Int32>, runs: UnsafeBufferPointer<LookupRun>, members: Int) -> [Int] {
    var perMember = [Int](repeating: 0, count: members)
    let starts = RunStarts(runs)
    for index in indices { perMember[runs[starts.run(holding: Int(index))].member] += 1 }
    return perMember
}

extension LookupError {
    /// A driver error during a lookup, as one sentence.
    static func gpu(_ error: CUDAError, device: Int, what: String) -> LookupError {
        .device(reason: "GPU \(device) failed a lookup of \(what): \(error)")
    }
}
