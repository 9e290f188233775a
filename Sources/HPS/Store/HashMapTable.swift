import CHPSSupport
import Synchronization

/// A table of the in-process hash-map store (`hash_map`, `parallel_hash_map`):
/// `num_partitions` partitions, each an index and a vector arena behind its
/// own reader-writer lock.
///
/// Lookups are software-pipelined: for key i the index slot is prefetched,
/// for key i − d the slot is probed and the vector prefetched, and for key
/// i − 2d the vector is copied, so the memory latency of one key overlaps the
/// work on the others.
///
/// Thread safety: lookups, inserts, erases and evictions may run concurrently.
/// A lookup holds every partition's lock shared for a chunk of keys; a change
/// holds one partition's lock exclusively.
public final class HashMapTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag.
    public let tag: String
    /// Floats per vector.
    public let vecSize: Int
    /// The number of member tables.
    public let memberCount: Int
    let partitions: [HashMapPartition]
    let overflow: OverflowSettings
    private let epoch = Atomic<UInt32>(1)
    private let evictionRandom: Mutex<SplitMix64>

    /// Keys a lookup handles per taking of the partition locks.
    static let lockChunk = 16_384
    /// How many keys ahead the pipeline prefetches.
    /// (Measured on the 2-core development machine: 4 to 10 are alike, 20 is
    /// slower; prefetching every line of a vector beats prefetching one or two.)
    static let distance = 8

    init(tag: String, vecSize: Int, members: Int, partitions count: Int, expectedKeys: Int, overflow: OverflowSettings) {
        self.tag = tag
        self.vecSize = vecSize
        self.memberCount = members
        self.overflow = overflow
        let memberBits = members <= 1 ? 0 : (Int.bitWidth - (members - 1).leadingZeroBitCount)
        let perPartition = expectedKeys == 0 ? 0 : Self.expectedPerPartition(expectedKeys, partitions: count)
        partitions = (0..<count).map { _ in
            HashMapPartition(vecSize: vecSize, memberBits: memberBits, expectedKeys: perPartition,
                             trackAccess: overflow.tracksAccess)
        }
        // A fixed hash of the tag (FNV-1a), so random eviction repeats from run to run.
        var seed: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in tag.utf8 { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
        evictionRandom = Mutex(SplitMix64(seed: seed))
    }

    /// Keys expected in the fullest partition: the mean plus four standard deviations.
    static func expectedPerPartition(_ keys: Int, partitions: Int) -> Int {
        let mean = Double(keys) / Double(partitions)
        return Int(mean + 4 * mean.squareRoot() + 16)
    }

    /// The number of keys held.
    public var count: Int {
        partitions.reduce(0) { sum, p in p.lock.withReadLock { sum + p.count } }
    }

    // MARK: Lookup

    /// A partition's index and arena as seen under its shared lock.
    @usableFromInline
    struct PartitionView {
        var buckets: UnsafeMutableRawPointer
        var capacity: Int
        var vectors: UnsafeMutablePointer<Float>
        var rowMask: UInt32
        var rowBits: UInt32
        var stamps: UnsafeMutablePointer<UInt32>?
    }

    /// One key in flight through the pipeline.
    struct InFlight {
        var partition: Int
        var slot: Int
        var key: Int64
        var member: Int
        var output: UnsafeMutablePointer<Float>
        var source: UnsafeMutablePointer<Float>?
    }

    public func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        let stamp = overflow.policy == .evictLeastUsed ? 0 : epoch.add(1, ordering: .relaxed).newValue
        return LookupSplit.run(runs, parallelism: parallelism, minimumPerPiece: Self.lockChunk, missed: missed) {
            run, offset, count, flatStart, missed in
            lookupRange(runs, run: run, offset: offset, count: count, flatStart: flatStart, defaults: defaults,
                        missed: missed, stamp: stamp)
        }
    }

    /// Looks up `count` keys from key `offset` of run `run` (flat index
    /// `flatStart`), taking the partition locks per chunk.
    private func lookupRange(_ runs: UnsafeBufferPointer<LookupRun>, run firstRun: Int, offset firstOffset: Int, count: Int,
                             flatStart start: Int, defaults: UnsafeBufferPointer<Float>?, missed: UnsafeMutablePointer<Int>?,
                             stamp: UInt32) -> Int {
        var run = firstRun, offset = firstOffset
        let end = start + count
        var misses = 0
        var position = start
        return withUnsafeTemporaryAllocation(of: PartitionView.self, capacity: partitions.count) { views in
            while position < end {
                let chunkEnd = min(end, position + Self.lockChunk)
                for p in partitions { p.lock.lockRead() }
                for (i, p) in partitions.enumerated() {
                    views[i] = PartitionView(buckets: p.buckets, capacity: p.capacity,
                                             vectors: p.vectors, rowMask: UInt32(truncatingIfNeeded: (1 << p.rowBits) - 1),
                                             rowBits: UInt32(p.rowBits), stamps: p.stamps)
                }
                misses += pipeline(runs, run: &run, offset: &offset, count: chunkEnd - position,
                                   views: UnsafeBufferPointer(views), defaults: defaults,
                                   missed: missed.map { $0 + misses }, missedBase: position, stamp: stamp)
                for p in partitions { p.lock.unlock() }
                position = chunkEnd
            }
            return misses
        }
    }

    /// The pipelined loop over `count` keys starting at (run, offset).
    @inline(__always)
    private func pipeline(_ runs: UnsafeBufferPointer<LookupRun>, run: inout Int, offset: inout Int, count: Int,
                          views: UnsafeBufferPointer<PartitionView>, defaults: UnsafeBufferPointer<Float>?,
                          missed: UnsafeMutablePointer<Int>?, missedBase: Int, stamp: UInt32) -> Int {
        let d = Self.distance
        let ringSize = 32  // ≥ 2d + 1, a power of two
        let vecSize = self.vecSize
        let bytes = vecSize &* 4
        let partitionCount = views.count
        let leastUsed = overflow.policy == .evictLeastUsed
        var misses = 0
        return withUnsafeTemporaryAllocation(of: InFlight.self, capacity: ringSize) { ring in
            var currentRun = runs[run]
            for i in 0..<(count &+ 2 &* d) {
                // Stage 1: hash, and prefetch the home slot.
                if i < count {
                    while offset == currentRun.count {
                        run &+= 1
                        offset = 0
                        currentRun = runs[run]
                    }
                    let key = currentRun.keys[offset]
                    let member = currentRun.member
                    let h = KeyHash.hash(key, member: member)
                    let p = partitionCount == 1 ? 0 : KeyHash.partition(h, count: partitionCount)
                    let view = views[p]
                    let slot = KeyHash.slot(h, capacity: view.capacity)
                    hps_prefetch(HashMapPartition.key(view.buckets, slot))
                    ring[i & (ringSize &- 1)] = InFlight(partition: p, slot: slot, key: key, member: member,
                                                         output: currentRun.output + offset &* vecSize, source: nil)
                    offset &+= 1
                }
                // Stage 2: probe, and prefetch the vector.
                let b = i &- d
                if b >= 0 && b < count {
                    let entry = ring[b & (ringSize &- 1)]
                    let view = views[entry.partition]
                    var slot = entry.slot
                    var source: UnsafeMutablePointer<Float>? = nil
                    while true {
                        let ref = HashMapPartition.ref(view.buckets, slot).pointee
                        if ref == 0 { break }
                        let stored = ref &- 1
                        if HashMapPartition.key(view.buckets, slot).pointee == entry.key
                            && (view.rowBits == 32 || Int(truncatingIfNeeded: stored >> view.rowBits) == entry.member) {
                            let row = Int(truncatingIfNeeded: stored & view.rowMask)
                            let vector = view.vectors + row &* vecSize
                            var line = 0
                            while line < bytes {
                                hps_prefetch(UnsafeRawPointer(vector) + line)
                                line &+= 64
                            }
                            if let stamps = view.stamps {
                                stamps[row] = leastUsed ? stamps[row] &+ 1 : stamp
                            }
                            source = vector
                            break
                        }
                        slot &+= 1
                        if slot == view.capacity { slot = 0 }
                    }
                    ring[b & (ringSize &- 1)].source = source
                }
                // Stage 3: copy the vector, or fill the default.
                let c = i &- 2 &* d
                if c >= 0 {
                    let entry = ring[c & (ringSize &- 1)]
                    if let source = entry.source {
                        UnsafeMutableRawPointer(entry.output).copyMemory(from: source, byteCount: bytes)
                    } else {
                        if let defaults {
                            entry.output.update(repeating: defaults[entry.member], count: vecSize)
                        }
                        missed?[misses] = missedBase &+ c
                        misses &+= 1
                    }
                }
            }
            return misses
        }
    }

    // MARK: Changes

    public func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        try checkInsert(member: member, keys: keys.count, floats: vectors.count)
        guard let keyBase = keys.baseAddress, let vectorBase = vectors.baseAddress, !keys.isEmpty else { return InsertCounts() }
        let n = keys.count
        let failure = Mutex<StoreError?>(nil)
        let total = LargeAllocation.withScratch(Int32.self, count: n) { order in
            LargeAllocation.withScratch(UInt64.self, count: n) { hashes in
                insertBatch(member: member, keys: keyBase, vectors: vectorBase, count: n, order: order, hashes: hashes,
                            parallelism: parallelism, failure: failure)
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return total
    }

    /// Inserts a batch sorted by partition (a counting sort into `order`), so
    /// that each partition's lock is taken once and partitions fill in parallel.
    private func insertBatch(member: Int, keys keyBase: UnsafePointer<Int64>, vectors vectorBase: UnsafePointer<Float>,
                             count n: Int, order: UnsafeMutableBufferPointer<Int32>, hashes: UnsafeMutableBufferPointer<UInt64>,
                             parallelism: Int, failure: borrowing Mutex<StoreError?>) -> InsertCounts {
        let pc = partitions.count
        var starts = [Int](repeating: 0, count: pc + 1)
        for i in 0..<n {
            let h = KeyHash.hash(keyBase[i], member: member)
            hashes[i] = h
            starts[KeyHash.partition(h, count: pc) + 1] += 1
        }
        for p in 0..<pc { starts[p + 1] += starts[p] }
        var fill = starts
        for i in 0..<n {
            let p = KeyHash.partition(hashes[i], count: pc)
            order[fill[p]] = Int32(i)
            fill[p] += 1
        }
        let stamp = epoch.load(ordering: .relaxed)
        let results = UnsafeMutableBufferPointer<InsertCounts>.allocate(capacity: pc)
        defer { results.deallocate() }
        parallelChunks(count: pc, parallelism: parallelism, minimumChunk: 1) { range in
            for p in range {
                let partition = partitions[p]
                var counts = InsertCounts()
                partition.lock.lockWrite()
                partition.reserve(additional: starts[p + 1] - starts[p])
                do {
                    for j in starts[p]..<starts[p + 1] {
                        let i = Int(order[j])
                        // Only a new key can overflow the partition; replacing a vector cannot.
                        if partition.count >= overflow.margin
                            && partition.find(keyBase[i], member: member, hash: hashes[i]) == nil {
                            counts.evicted += evict(partition)
                        }
                        if try partition.upsert(keyBase[i], member: member, hash: hashes[i],
                                                vector: vectorBase + i * vecSize, stamp: stamp) {
                            counts.inserted += 1
                        } else {
                            counts.replaced += 1
                        }
                    }
                } catch {
                    failure.withLock { $0 = StoreError.partitionFull(table: tag, rows: partition.maxRows) }
                }
                partition.lock.unlock()
                results[p] = counts
            }
        }
        return results.reduce(InsertCounts(), +)
    }

    private func evict(_ partition: HashMapPartition) -> Int {
        let target = Int(Double(overflow.margin) * overflow.resolutionTarget)
        return evictionRandom.withLock { random in
            partition.evict(downTo: min(target, overflow.margin - 1), policy: overflow.policy, random: &random)
        }
    }

    public func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int {
        var erased = 0
        for key in keys {
            let h = KeyHash.hash(key, member: member)
            let partition = partitions[KeyHash.partition(h, count: partitions.count)]
            partition.lock.withWriteLock {
                if partition.erase(key, member: member, hash: h) { erased += 1 }
            }
        }
        return erased
    }
}

/// The overflow rules of the volatile store, per partition.
struct OverflowSettings: Sendable {
    /// Keys a partition may hold before it evicts.
    var margin: Int
    /// Which keys go first.
    var policy: OverflowPolicy
    /// The fraction of the margin left after an eviction.
    var resolutionTarget: Double

    /// Whether rows need an access stamp: only when a margin is set and the
    /// policy looks at use.
    var tracksAccess: Bool { margin < Int.max && policy != .evictRandom }

    static let unbounded = OverflowSettings(margin: .max, policy: .evictRandom, resolutionTarget: 0.8)
}
