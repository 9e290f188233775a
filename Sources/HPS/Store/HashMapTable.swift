import CHPSSupport
import Synchronization

/// A table of the in-process hash-map store (`hash_map`, `parallel_hash_map`):
/// `num_partitions` partitions, each an index and a vector arena behind its
/// own reader-writer lock.
///
/// Lookups run in chunks of `chunk` keys, each in two passes. The probe pass
/// prefetches the first bucket of key i and searches key i − `probeDistance`
/// in its first bucket; a key not there (about one in five) has its second
/// bucket prefetched and searched after the rest of the chunk. It keeps each
/// key's vector address. The copy pass prefetches the vector of key
/// i + `copyDistance` and copies key i's. So many index reads are in flight
/// at once, and then many vector reads, instead of each vector read waiting
/// behind its key's probe, and a key reads a second index line only when it
/// needs it. A lookup whose output is at least `streamingBytes` writes it
/// with streaming stores (`hps_copy_streaming`).
///
/// Thread safety: lookups, inserts, erases and evictions may run concurrently.
/// A lookup holds every partition's lock shared for a chunk of keys; a change
/// holds one partition's lock exclusively.
package final class HashMapTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag.
    package let tag: String
    /// Floats per vector.
    package let vecSize: Int
    /// How the rows are stored (`vector_storage`).
    package var storage: VectorStorage { codec.storage }
    /// Encodes and decodes the rows.
    let codec: VectorCodec
    /// The number of member tables.
    package let memberCount: Int
    let partitions: [HashMapPartition]
    /// Bytes per stored row.
    var rowBytes: Int { codec.rowBytes }
    let overflow: OverflowSettings
    private let epoch = Atomic<UInt32>(1)
    private let evictionRandom: Locked<SplitMix64>

    /// Keys a lookup handles per taking of the partition locks.
    static let lockChunk = 16_384
    /// The fewest keys a thread of a parallel lookup takes.
    static let keysPerThread = 4096
    /// Keys probed before their vectors are copied.
    static let chunk = 2048
    /// How many keys ahead the probe pass prefetches a key's buckets.
    static let probeDistance = 16
    /// How many keys ahead the copy pass prefetches a vector.
    /// (Measured on the 2-core development machine: 4 to 10 are alike, 20 is
    /// slower; prefetching every line of a vector beats prefetching one or two.)
    package static let copyDistance = 8
    /// How many keys ahead an insert prefetches a key's buckets and vector.
    static let insertDistance = 8
    /// A lookup whose output has at least this many bytes writes it with
    /// streaming stores: such an output does not stay in a core's caches for
    /// its reader anyway, and writing it without first reading each line
    /// saves a third of the memory traffic.
    package static let streamingBytes = 8 << 20
    init(tag: String, vecSize: Int, storage: VectorStorage = .fp32, members: Int, partitions count: Int, expectedKeys: Int,
         overflow: OverflowSettings) {
        self.tag = tag
        self.vecSize = vecSize
        codec = VectorCodec(storage: storage, dim: vecSize)
        self.memberCount = members
        self.overflow = overflow
        let memberBits = members <= 1 ? 0 : (Int.bitWidth - (members - 1).leadingZeroBitCount)
        let perPartition = expectedKeys == 0 ? 0 : Self.expectedPerPartition(expectedKeys, partitions: count)
        partitions = (0..<count).map { _ in
            HashMapPartition(vecSize: vecSize, storage: storage, memberBits: memberBits, expectedKeys: perPartition,
                             trackAccess: overflow.tracksAccess)
        }
        // A fixed hash of the tag (FNV-1a), so random eviction repeats from run to run.
        var seed: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in tag.utf8 { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
        evictionRandom = Locked(SplitMix64(seed: seed))
    }

    /// Keys expected in the fullest partition: the mean plus four standard deviations.
    static func expectedPerPartition(_ keys: Int, partitions: Int) -> Int {
        let mean = Double(keys) / Double(partitions)
        return Int(mean + 4 * mean.squareRoot() + 16)
    }

    /// Bytes of memory the table holds: its partitions' indexes and row
    /// arenas as allocated (the arenas' capacity, not only the rows used).
    package var bytesHeld: Int {
        partitions.reduce(0) { sum, p in p.lock.withReadLock { sum + p.bucketCount * 64 + p.rowCapacity * rowBytes } }
    }

    /// The number of keys held.
    package var count: Int {
        partitions.reduce(0) { sum, p in p.lock.withReadLock { sum + p.count } }
    }

    // MARK: Lookup

    /// A partition's index and arena as seen under its shared lock.
    @usableFromInline
    struct PartitionView {
        var buckets: UnsafeMutableRawPointer
        var bucketCount: Int
        var vectors: UnsafeMutableRawPointer
        var rowMask: UInt32
        var rowBits: UInt32
        var stamps: UnsafeMutablePointer<UInt32>?
    }

    /// One key of a chunk between the probe pass and the copy pass.
    struct Probe {
        var key: Int64
        var first: Int32
        var partition: Int32
        var member: Int32
        var second: Int32
        /// The stored row found, nil for a missing key.
        var source: UnsafeMutableRawPointer?
    }

    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        let stamp = overflow.policy == .evictLeastUsed ? 0 : epoch.add(1, ordering: .relaxed).newValue
        // Decoded rows are written by the decoder's plain stores.
        let streaming = storage == .fp32 && runs.reduce(0) { $0 + $1.count } &* vecSize &* 4 >= Self.streamingBytes
        return LookupSplit.run(runs, parallelism: parallelism, minimumPerPiece: Self.keysPerThread, missed: missed) {
            run, offset, count, flatStart, missed in
            lookupRange(runs, run: run, offset: offset, count: count, flatStart: flatStart, defaults: defaults,
                        missed: missed, stamp: stamp, streaming: streaming)
        }
    }

    /// Looks up `count` keys from key `offset` of run `run` (flat index
    /// `flatStart`), taking the partition locks per `lockChunk` keys.
    private func lookupRange(_ runs: UnsafeBufferPointer<LookupRun>, run firstRun: Int, offset firstOffset: Int, count: Int,
                             flatStart start: Int, defaults: UnsafeBufferPointer<Float>?, missed: UnsafeMutablePointer<Int>?,
                             stamp: UInt32, streaming: Bool) -> Int {
        var run = firstRun, offset = firstOffset
        let end = start + count
        var misses = 0
        var position = start
        return withUnsafeTemporaryAllocation(of: PartitionView.self, capacity: partitions.count) { views in
            withUnsafeTemporaryAllocation(of: Probe.self, capacity: Self.chunk) { probes in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: Self.chunk) { deferred in
                while position < end {
                    let lockEnd = min(end, position + Self.lockChunk)
                    for p in partitions { p.lock.lockRead() }
                    for (i, p) in partitions.enumerated() {
                        views[i] = PartitionView(buckets: p.buckets, bucketCount: p.bucketCount, vectors: p.vectors,
                                                 rowMask: UInt32(truncatingIfNeeded: (1 << p.rowBits) - 1),
                                                 rowBits: UInt32(p.rowBits), stamps: p.stamps)
                    }
                    while position < lockEnd {
                        let n = min(Self.chunk, lockEnd - position)
                        let copyRun = run, copyOffset = offset
                        probe(runs, run: &run, offset: &offset, count: n, views: UnsafeBufferPointer(views),
                              probes: probes, deferred: deferred, stamp: stamp)
                        misses += copy(runs, run: copyRun, offset: copyOffset, count: n, probes: probes,
                                       defaults: defaults, missed: missed.map { $0 + misses },
                                       missedBase: position, streaming: streaming)
                        position += n
                    }
                    for p in partitions { p.lock.unlock() }
                }
                if streaming { hps_streaming_fence() }
                return misses
            }
            }
        }
    }

    /// The probe pass over `count` keys starting at (run, offset): each
    /// key's vector, or nil, into `probes`.
    @inline(__always)
    private func probe(_ runs: UnsafeBufferPointer<LookupRun>, run: inout Int, offset: inout Int, count: Int,
                       views: UnsafeBufferPointer<PartitionView>, probes: UnsafeMutableBufferPointer<Probe>,
                       deferred: UnsafeMutableBufferPointer<Int32>, stamp: UInt32) {
        let d = Self.probeDistance
        let partitionCount = views.count
        var currentRun = runs[run]
        var deferredCount = 0
        for i in 0..<(count &+ d) {
            // Hash, and prefetch the first bucket.
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
                let (first, second) = HashMapPartition.buckets(of: h, count: view.bucketCount)
                hps_prefetch(view.buckets + first &* 64)
                probes[i] = Probe(key: key, first: Int32(truncatingIfNeeded: first), partition: Int32(truncatingIfNeeded: p),
                                  member: Int32(truncatingIfNeeded: member), second: Int32(truncatingIfNeeded: second),
                                  source: nil)
                offset &+= 1
            }
            // Search key i − d in its first bucket, or prefetch its second.
            let b = i &- d
            if b >= 0 && !search(probes, b, bucket: Int(probes[b].first), views: views, stamp: stamp) {
                let entry = probes[b]
                hps_prefetch(views[Int(entry.partition)].buckets + Int(entry.second) &* 64)
                deferred[deferredCount] = Int32(truncatingIfNeeded: b)
                deferredCount &+= 1
            }
        }
        for j in 0..<deferredCount {
            let b = Int(deferred[j])
            _ = search(probes, b, bucket: Int(probes[b].second), views: views, stamp: stamp)
        }
    }

    /// Searches one bucket for the key of `probes[b]`; when found, sets its
    /// source and stamps its row.
    /// - Returns: whether it was found.
    @inline(__always)
    private func search(_ probes: UnsafeMutableBufferPointer<Probe>, _ b: Int, bucket: Int,
                        views: UnsafeBufferPointer<PartitionView>, stamp: UInt32) -> Bool {
        let entry = probes[b]
        let view = views[Int(entry.partition)]
        guard let position = HashMapPartition.position(of: entry.key, member: Int(entry.member), in: bucket,
                                                       buckets: view.buckets, rowBits: Int(view.rowBits)) else { return false }
        let ref = HashMapPartition.ref(view.buckets, bucket: bucket, position: position).pointee
        let row = Int(truncatingIfNeeded: (ref &- 1) & view.rowMask)
        if let stamps = view.stamps {
            stamps[row] = overflow.policy == .evictLeastUsed ? stamps[row] &+ 1 : stamp
        }
        probes[b].source = view.vectors + row &* rowBytes
        return true
    }

    /// The copy pass over the `count` keys starting at (run, offset) whose
    /// probes are in `probes`: each vector to its output, or the member's
    /// default value for a missing key, whose flat index goes to `missed`.
    /// - Returns: the number missed.
    @inline(__always)
    private func copy(_ runs: UnsafeBufferPointer<LookupRun>, run firstRun: Int, offset firstOffset: Int, count: Int,
                      probes: UnsafeMutableBufferPointer<Probe>, defaults: UnsafeBufferPointer<Float>?,
                      missed: UnsafeMutablePointer<Int>?, missedBase: Int, streaming: Bool) -> Int {
        let d = Self.copyDistance
        let vecSize = self.vecSize
        let bytes = vecSize &* 4
        let rowBytes = self.rowBytes
        let codec = self.codec
        var run = firstRun, offset = firstOffset
        var currentRun = runs[run]
        var misses = 0
        for i in 0..<count {
            if i &+ d < count, let ahead = probes[i &+ d].source { hps_prefetch_lines(ahead, rowBytes) }
            while offset == currentRun.count {
                run &+= 1
                offset = 0
                currentRun = runs[run]
            }
            let output = currentRun.output + offset &* vecSize
            offset &+= 1
            if let source = probes[i].source {
                if streaming {
                    hps_copy_streaming(output, source, bytes)
                } else if codec.storage == .fp32 {
                    UnsafeMutableRawPointer(output).copyMemory(from: source, byteCount: bytes)
                } else {
                    codec.decode(source, into: output)
                }
            } else {
                if let defaults {
                    output.update(repeating: defaults[currentRun.member], count: vecSize)
                }
                missed?[misses] = missedBase &+ i
                misses &+= 1
            }
        }
        return misses
    }

    // MARK: Changes

    package func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        try checkInsert(member: member, keys: keys.count, floats: vectors.count)
        guard let keyBase = keys.baseAddress, let vectorBase = vectors.baseAddress, !keys.isEmpty else { return InsertCounts() }
        let n = keys.count
        let failure = Locked<StoreError?>(nil)
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
                             parallelism: Int, failure: Locked<StoreError?>) -> InsertCounts {
        let pc = partitions.count
        let starts = PartitionGrouping.group(partitions: pc, into: UnsafeMutableBufferPointer(rebasing: order[0..<n])) { i in
            let h = KeyHash.hash(keyBase[i], member: member)
            hashes[i] = h
            return KeyHash.partition(h, count: pc)
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
                    let end = starts[p + 1]
                    for j in starts[p]..<end {
                        let i = Int(order[j])
                        // The buckets and the vector of the key `insertDistance` ahead.
                        if j + Self.insertDistance < end {
                            let ahead = Int(order[j + Self.insertDistance])
                            partition.prefetchBuckets(of: hashes[ahead])
                            hps_prefetch_lines(vectorBase + ahead * vecSize, vecSize * 4)
                        }
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
                    // The partition's errors leave the table unnamed: name it.
                    let named: StoreError
                    if case let .unrepresentable(_, key, element, value, storage)? = error as? StoreError {
                        named = .unrepresentable(table: tag, key: key, element: element, value: value, storage: storage)
                    } else {
                        named = .partitionFull(table: tag, rows: partition.maxRows)
                    }
                    failure.withLock { $0 = named }
                }
                partition.releaseUnusedRows()
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

    package func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int {
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
