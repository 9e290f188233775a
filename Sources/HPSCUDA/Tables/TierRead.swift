import HPS

extension TierChain {
    /// Reads keys of any members from the tiers, for a GPU table's misses:
    /// their vectors (the member's default where no tier holds the key), row
    /// k for key k, and which were found.
    /// - Parameters:
    ///   - members: per key, its member (in any order).
    ///   - defaults: per member, the value of a key found nowhere.
    ///   - hits: receives, per tier and member, the keys each answered, and the keys none holds.
    func read(keys: [Int64], members: [Int32], dim: Int, defaults: [Float],
              hits: inout TierHits) -> (vectors: [Float], found: [Bool]) {
        // The tiers take runs of one member: keys of several members are
        // read in member order, then put back in place.
        let grouped = zip(members, members.dropFirst()).allSatisfy { $0 <= $1 }
        let order = grouped ? Array(keys.indices) : keys.indices.sorted { members[$0] < members[$1] }
        let sortedKeys = grouped ? keys : order.map { keys[$0] }
        var vectors = [Float](repeating: 0, count: keys.count * dim)
        var sortedVectors = grouped ? [] : [Float](repeating: 0, count: keys.count * dim)
        var missed = [Int](repeating: 0, count: keys.count)
        func read(into v: UnsafeMutableBufferPointer<Float>, hits: inout TierHits) -> Int {
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
                return defaults.withUnsafeBufferPointer { d in
                    missed.withUnsafeMutableBufferPointer { m in
                        runs.withUnsafeBufferPointer {
                            lookup($0, defaults: d, missed: m.baseAddress, parallelism: Self.readParallelism(keys.count),
                                   hits: &hits)
                        }
                    }
                }
            }
        }
        let misses = grouped ? vectors.withUnsafeMutableBufferPointer { read(into: $0, hits: &hits) }
                             : sortedVectors.withUnsafeMutableBufferPointer { read(into: $0, hits: &hits) }
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

    /// Threads for reading `count` keys: one per 4,096 keys, at most every core.
    static func readParallelism(_ count: Int) -> Int {
        max(1, min(availableCores, count / 4096))
    }
}

/// Keys a GPU table with a fixed set of keys (a static table, a uvm cache's
/// table) does not hold, answered from the tiers below: an online update may
/// have added them there. `hps_lookup` wrote their member's default; the
/// ones a tier holds are overwritten with their vector on the device.
struct UnheldKeys {
    /// The keys, their members, and their rows in the lookup's output.
    var keys: [Int64] = []
    var members: [Int32] = []
    var outputRows: [Int32] = []

    /// The batch's keys at `indices` (flat indices into its keys), with
    /// their output rows as `hps_lookup` placed them (`layout`).
    /// - Parameter hostKeys: the batch's keys on the host when `batch.keys`
    ///   is empty (a lookup from device keys).
    init(indices: UnsafeBufferPointer<Int32>, batch: CacheBatch, hostKeys: [Int64]? = nil, layout: GPUStaticTable.Layout,
         keysPerSample: Int) {
        let runStarts = RunStarts(batch.runs)
        for index in indices {
            let i = Int(index)
            let lo = runStarts.run(holding: i)
            keys.append(hostKeys?[i] ?? batch.keys[i])
            members.append(Int32(batch.runs[lo].member))
            switch layout {
            case .keyOrder:
                outputRows.append(Int32(i))
            case .samplesByRun:
                let j = i - runStarts.starts[lo]
                let sample = j / keysPerSample
                outputRows.append(Int32((sample * batch.runs.count + lo) * keysPerSample + j % keysPerSample))
            }
        }
    }

    /// Given keys, members and output rows.
    init(keys: [Int64], members: [Int32], outputRows: [Int32]) {
        self.keys = keys
        self.members = members
        self.outputRows = outputRows
    }

    /// Reads the keys from `below` and writes the vectors found into their
    /// output rows at `output` (device memory: the lookup's destination, or
    /// its staged rows), on the stage's stream; the caller synchronizes.
    /// - Returns: per tier of `below` and member, the keys each answered, and the keys none holds.
    func fill(from below: TierChain, dim: Int, defaults: [Float], memberCount: Int, output: UInt64,
              stage: GPULookupStage, scatter: CUDAKernel) throws(CUDAError) -> TierHits {
        var hits = TierHits(tiers: below.tiers.count, members: memberCount)
        guard !keys.isEmpty else { return hits }
        let (vectors, found) = below.read(keys: keys, members: members, dim: dim, defaults: defaults, hits: &hits)
        let rows = keys.indices.filter { found[$0] }
        guard !rows.isEmpty else { return hits }
        var foundVectors = [Float]()
        foundVectors.reserveCapacity(rows.count * dim)
        for k in rows { foundVectors += vectors[(k * dim)..<((k + 1) * dim)] }
        let rowBuffer = try stage.scratch.buffer("unheldRows", bytes: rows.count * 4)
        let vectorBuffer = try stage.scratch.buffer("unheldVectors", bytes: foundVectors.count * 4)
        try stage.stream.upload(rows.map { outputRows[$0] }, to: rowBuffer.address)
        try stage.stream.upload(foundVectors, to: vectorBuffer.address)
        try scatter.launch(grid: (rows.count * dim + 255) / 256, block: 256, stream: stage.stream,
                           rowBuffer.address, vectorBuffer.address, Int32(rows.count), output)
        return hits
    }
}

extension TierHits {
    /// Moves the keys a cache missed to where `fromBelow` (the tiers below
    /// it, numbered from 0) answered them, and the rest to the defaults.
    mutating func moveFromCache(member: Int, answeredBelow fromBelow: TierHits) {
        for tier in fromBelow.answered.indices {
            moveFromCache(member: member, count: fromBelow.answered[tier][member], to: tier + 1)
        }
        moveFromCache(member: member, count: fromBelow.missing[member], to: nil)
    }
}
