
/// A bounded cache in CPU memory in front of tiers that are slow to ask
/// (Redis Cluster over the network, RocksDB on disk): the L1 of a session
/// on the CPU, as a GPU cache is the L1 of a session on a GPU.
///
/// It holds at most `capacity` rows (`gpucacheper` × the group's keys, as a
/// GPU cache would), in a partitioned hash map that evicts the least
/// recently used rows when a partition is full. A miss is read from the
/// tiers below before the lookup returns (reading them costs a round trip
/// either way; answering defaults first would only make results wrong for
/// longer) and, when a tier holds it, inserted. Keys that no tier holds are
/// not cached, so they are asked again.
///
/// Thread safety: lookups may run concurrently (the hash map is).
package final class CPUEmbeddingCache: EmbeddingCache {
    package let kind = "cpu_cache"
    package var device: Int? { nil }
    package let vecSize: Int
    package let memberCount: Int
    /// The most rows held.
    package let capacity: Int
    let rows: HashMapTable
    let parallelism: Int
    private let counters = Locked(CacheStatistics())

    /// An empty cache of `capacity` rows for a group of `members` tables of `vecSize` floats.
    /// - Parameters:
    ///   - tag: names the cache's table, `hps_et.<model>.<group>`.
    ///   - parallelism: threads one lookup or insert may use.
    package init(tag: String, vecSize: Int, members: Int, capacity: Int, parallelism: Int = 1) {
        self.vecSize = vecSize
        self.memberCount = members
        self.capacity = max(1, capacity)
        self.parallelism = max(1, parallelism)
        // A partition per 64K rows (up to 16) keeps the least-used scans short and inserts parallel.
        let partitions = max(1, min(16, self.capacity / 65_536))
        let margin = max(1, self.capacity / partitions)
        rows = HashMapTable(tag: tag, vecSize: vecSize, members: members, partitions: partitions,
                            expectedKeys: self.capacity,
                            overflow: OverflowSettings(margin: margin, policy: .evictLeastUsed, resolutionTarget: 0.8))
    }

    /// Rows held.
    package var count: Int { rows.count }

    package var statistics: CacheStatistics { counters.withLock { $0 } }

    package func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                       hits: inout TierHits) throws(LookupError) {
        if batch.device != nil {
            throw .destination(reason: "a CPU cache writes host memory, not device memory; look up through a session on a GPU for a device destination")
        }
        if batch.deviceKeys != nil {
            throw .deviceKeys(reason: "a CPU cache reads keys in host memory, not device memory; look up through a session on a GPU for device keys")
        }
        let runs = batch.runs
        let total = batch.keys.count
        guard total > 0 else { return }
        let missed = UnsafeMutableBufferPointer<Int>.allocate(capacity: total)
        defer { missed.deallocate() }
        let misses = rows.lookup(runs, defaults: nil, missed: missed.baseAddress, parallelism: parallelism)
        for run in runs { hits.answered[0][run.member] += run.count }
        var statistics = CacheStatistics()
        statistics.keys = total
        statistics.hits = total - misses
        defer { counters.withLock { $0.add(statistics) } }
        guard misses > 0 else { return }

        // The missed keys in flat order, as runs of one member each, into a staging buffer.
        let keys = UnsafeMutableBufferPointer<Int64>.allocate(capacity: misses)
        let outputs = UnsafeMutableBufferPointer<UnsafeMutablePointer<Float>>.allocate(capacity: misses)
        let staged = UnsafeMutableBufferPointer<Float>.allocate(capacity: misses * vecSize)
        defer { keys.deallocate(); outputs.deallocate(); staged.deallocate() }
        var missRuns: [LookupRun] = []
        var r = 0, runStart = 0
        for j in 0..<misses {
            let flat = missed[j]
            while flat >= runStart + runs[r].count { runStart += runs[r].count; r += 1 }
            let run = runs[r]
            keys[j] = run.keys[flat - runStart]
            outputs[j] = run.output + (flat - runStart) * vecSize
            hits.answered[0][run.member] -= 1
            if let last = missRuns.last, last.member == run.member {
                missRuns[missRuns.count - 1].count += 1
            } else {
                missRuns.append(LookupRun(member: run.member, keys: keys.baseAddress! + j, count: 1,
                                          output: staged.baseAddress! + j * vecSize))
            }
        }
        let stillMissing = UnsafeMutableBufferPointer<Int>.allocate(capacity: misses)
        defer { stillMissing.deallocate() }
        var absent = 0
        if let below {
            var belowHits = TierHits(tiers: below.tiers.count, members: memberCount)
            absent = missRuns.withUnsafeBufferPointer {
                below.lookup($0, defaults: defaults, missed: stillMissing.baseAddress, parallelism: parallelism, hits: &belowHits)
            }
            for tier in belowHits.answered.indices {
                for member in 0..<memberCount { hits.answered[tier + 1][member] += belowHits.answered[tier][member] }
            }
            for member in 0..<memberCount { hits.missing[member] += belowHits.missing[member] }
        } else {
            for run in missRuns {
                run.output.update(repeating: defaults[run.member], count: run.count * vecSize)
                hits.missing[run.member] += run.count
            }
            for j in 0..<misses { stillMissing[j] = j }
            absent = misses
        }
        for j in 0..<misses {
            outputs[j].update(from: staged.baseAddress! + j * vecSize, count: vecSize)
        }
        // Cache what a tier holds, member by member; what no tier holds is asked again next time.
        var a = 0, start = 0
        for run in missRuns {
            var found: [Int] = []
            for j in start..<(start + run.count) {
                if a < absent && stillMissing[a] == j { a += 1 } else { found.append(j) }
            }
            start += run.count
            guard !found.isEmpty else { continue }
            var foundKeys = [Int64](), foundVectors = [Float]()
            foundKeys.reserveCapacity(found.count)
            foundVectors.reserveCapacity(found.count * vecSize)
            for j in found {
                foundKeys.append(keys[j])
                foundVectors.append(contentsOf: UnsafeBufferPointer(start: staged.baseAddress! + j * vecSize, count: vecSize))
            }
            do {
                let counts = try foundKeys.withUnsafeBufferPointer { k in
                    try foundVectors.withUnsafeBufferPointer { v in
                        try rows.insert(member: run.member, keys: k, vectors: v, parallelism: parallelism)
                    }
                }
                statistics.inserts += counts.inserted
                statistics.evictions += counts.evicted
            } catch {
                // The lookup has its answer; the keys stay missing and are read again next time.
                statistics.failedInserts += 1
            }
        }
    }

    /// Puts rows in the cache (a warm start, or a stand-in for a GPU table in
    /// tests), evicting as a miss's insert would when it is full.
    /// - Parameters: `keys` (n) and `vectors` (n × vecSize) of one member.
    package func insert(member: Int, keys: [Int64], vectors: [Float]) throws(StoreError) {
        let counts = try keys.withUnsafeBufferPointer { (k) throws(StoreError) in
            try vectors.withUnsafeBufferPointer { (v) throws(StoreError) in
                try rows.insert(member: member, keys: k, vectors: v, parallelism: parallelism)
            }
        }
        counters.withLock {
            $0.inserts += counts.inserted
            $0.evictions += counts.evicted
        }
    }

    /// Drops the cached rows of keys that the cache holds (an update from
    /// the API or a message queue); keys it does not hold are left out.
    /// - Returns: the rows dropped.
    @discardableResult
    package func update(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>) -> CacheUpdate {
        // Dropping is as correct as replacing (the next lookup reads the new vector from below) and never grows the cache.
        CacheUpdate(rows: rows.erase(member: member, keys: keys))
    }
}

extension CacheStatistics {
    /// Adds another's counts to these.
    package mutating func add(_ other: CacheStatistics) {
        keys += other.keys
        hits += other.hits
        inserts += other.inserts
        evictions += other.evictions
        refreshes += other.refreshes
        failedInserts += other.failedInserts
        deviceNanoseconds += other.deviceNanoseconds
    }
}
