import CHPSSupport
import Glibc

/// One partition of a `HashMapTable`: a two-choice bucketed index from
/// (member, key) to a row of a contiguous vector arena.
///
/// Layout (why): the index is an array of 64-byte buckets of five slots, five
/// keys (8 bytes each) then five refs (4 bytes each). A (member, key) sits in
/// one of two buckets chosen by its hash (`buckets(of:count:)`), placed by
/// cuckoo insertion, the first bucket while it has room. So a lookup reads at
/// most two cache lines that it knows in advance and can prefetch together;
/// linear probing at this load sent one key in ten past the two lines a
/// lookup could prefetch, and each of those waited a full DRAM access. A
/// table filled to 7/8 costs about 15 bytes per key beyond its vectors. A ref
/// is `((member << rowBits) | row) + 1`, 0 meaning an empty slot. Slots are
/// numbered bucket × 5 + position. Vectors live in one arena per partition,
/// allocated with malloc so that capacity not yet used costs no resident
/// memory and growth is a remap, not a copy. A row is `codec.rowBytes`
/// bytes: the float32 vector, or its quantized form (`VectorStorage`).
///
/// Thread safety: none by itself; `HashMapTable` holds `lock` shared for
/// lookups and exclusive for changes.
final class HashMapPartition: @unchecked Sendable {
    let lock = ReadWriteLock()
    let vecSize: Int
    /// How rows are stored; `codec.rowBytes` bytes each.
    let codec: VectorCodec
    let rowBits: Int
    let maxRows: Int

    /// `bucketCount` buckets of 64 bytes.
    private(set) var buckets: UnsafeMutableRawPointer
    private(set) var bucketCount: Int
    /// Slots: five per bucket.
    var capacity: Int { bucketCount * Self.bucketSlots }
    private(set) var count = 0

    /// The row arena: `rowCapacity` rows of `codec.rowBytes` bytes.
    private(set) var vectors: UnsafeMutableRawPointer
    private(set) var rowCapacity: Int
    /// One encoded row, checked before a quantized upsert touches the table.
    private let encoded: UnsafeMutableRawPointer
    private var rowsUsed = 0
    private var freeRows: [UInt32] = []
    /// Chooses the slot a cuckoo walk displaces (a fixed seed: loads repeat).
    private var kickRandom = SplitMix64(seed: 0x5EED_C0C0)

    /// Per row: the last access epoch (evict_oldest) or the access count
    /// (evict_least_used); nil when the overflow policy does not need it.
    private(set) var stamps: UnsafeMutablePointer<UInt32>?

    static let bucketSlots = 5
    static let maxLoadNumerator = 7
    static let maxLoadDenominator = 8
    /// Displacements one insert may make before the index grows instead.
    static let maxKicks = 500

    init(vecSize: Int, storage: VectorStorage = .fp32, memberBits: Int, expectedKeys: Int, trackAccess: Bool) {
        self.vecSize = vecSize
        codec = VectorCodec(storage: storage, dim: vecSize)
        encoded = .allocate(byteCount: codec.rowBytes, alignment: 16)
        self.rowBits = 32 - memberBits
        self.maxRows = (1 << rowBits) - 2
        let rows = max(16, expectedKeys)
        bucketCount = Self.bucketCount(for: rows)
        buckets = LargeAllocation.allocate(bytes: bucketCount * 64)
        rowCapacity = rows
        vectors = LargeAllocation.allocate(bytes: rows * codec.rowBytes)
        stamps = trackAccess ? Self.allocateZeroed(UInt32.self, rows) : nil
    }

    deinit {
        LargeAllocation.release(buckets, bytes: bucketCount * 64)
        LargeAllocation.release(vectors, bytes: rowCapacity * codec.rowBytes)
        encoded.deallocate()
        if let stamps { LargeAllocation.release(stamps, bytes: rowCapacity * 4) }
    }

    /// The number of buckets that holds `keys` keys at just under the maximum load.
    static func bucketCount(for keys: Int) -> Int {
        let slots = (keys * maxLoadDenominator + maxLoadNumerator - 1) / maxLoadNumerator + 1
        return max(4, (slots + bucketSlots - 1) / bucketSlots)
    }

    /// The two buckets of a hash among `count`: the first from its low half
    /// (the partition is chosen by its high half), the second from all of it
    /// multiplied by an odd constant, moved on by one when they meet.
    @inline(__always)
    static func buckets(of h: UInt64, count: Int) -> (Int, Int) {
        let n = UInt64(truncatingIfNeeded: count)
        let first = Int(truncatingIfNeeded: ((h & 0xFFFF_FFFF) &* n) >> 32)
        var second = Int(truncatingIfNeeded: (((h &* 0x9E37_79B9_7F4A_7C15) >> 32) &* n) >> 32)
        if second == first { second = first &+ 1 == count ? 0 : first &+ 1 }
        return (first, second)
    }

    /// The key of a slot.
    @inline(__always)
    static func key(_ buckets: UnsafeMutableRawPointer, _ slot: Int) -> UnsafeMutablePointer<Int64> {
        let bucket = slot / 5
        return (buckets + (bucket &* 64 &+ (slot &- bucket &* 5) &* 8)).assumingMemoryBound(to: Int64.self)
    }

    /// The ref of a slot.
    @inline(__always)
    static func ref(_ buckets: UnsafeMutableRawPointer, _ slot: Int) -> UnsafeMutablePointer<UInt32> {
        let bucket = slot / 5
        return ref(buckets, bucket: bucket, position: slot &- bucket &* 5)
    }

    /// The ref of the slot at `position` (0–4) of `bucket`.
    @inline(__always)
    static func ref(_ buckets: UnsafeMutableRawPointer, bucket: Int, position: Int) -> UnsafeMutablePointer<UInt32> {
        (buckets + (bucket &* 64 &+ 40 &+ position &* 4)).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) private func slotKey(_ slot: Int) -> Int64 { Self.key(buckets, slot).pointee }
    @inline(__always) private func slotRef(_ slot: Int) -> UInt32 { Self.ref(buckets, slot).pointee }

    private static func allocateZeroed<T>(_: T.Type, _ n: Int) -> UnsafeMutablePointer<T> {
        LargeAllocation.allocate(bytes: n * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: n)
    }

    private static func reallocate<T>(_ p: UnsafeMutablePointer<T>, from old: Int, to new: Int) -> UnsafeMutablePointer<T> {
        LargeAllocation.reallocate(UnsafeMutableRawPointer(p), from: old * MemoryLayout<T>.stride,
                                   to: new * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: new)
    }

    /// The ref of (member, row) as stored in a slot.
    @inline(__always)
    func ref(member: Int, row: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: (member << rowBits) | row) &+ 1
    }

    /// The row of a stored ref.
    @inline(__always)
    func row(of ref: UInt32) -> Int {
        Int(truncatingIfNeeded: (ref &- 1) & UInt32(truncatingIfNeeded: (1 << rowBits) - 1))
    }

    /// The member of a stored ref.
    @inline(__always)
    func member(of ref: UInt32) -> Int { Self.member(of: ref, rowBits: rowBits) }

    /// The member of a stored ref in a partition of `rowBits` row bits (32: a
    /// table of one member, whose refs hold no member).
    @inline(__always)
    static func member(of ref: UInt32, rowBits: Int) -> Int {
        rowBits == 32 ? 0 : Int(truncatingIfNeeded: (ref &- 1) >> UInt32(truncatingIfNeeded: rowBits))
    }

    /// The slot holding (member, key), or nil.
    @inline(__always)
    func find(_ key: Int64, member: Int, hash: UInt64) -> Int? {
        let (first, second) = Self.buckets(of: hash, count: bucketCount)
        if let position = Self.position(of: key, member: member, in: first, buckets: buckets, rowBits: rowBits) {
            return first &* 5 &+ position
        }
        if let position = Self.position(of: key, member: member, in: second, buckets: buckets, rowBits: rowBits) {
            return second &* 5 &+ position
        }
        return nil
    }

    /// The position (0–4) of (member, key) in `bucket`, or nil: all five keys
    /// are compared at once (`hps_bucket_key_matches`), and a match whose
    /// slot is empty (an erased key stays in its slot) or holds another
    /// member's equal key is passed over.
    @inline(__always)
    static func position(of key: Int64, member: Int, in bucket: Int, buckets: UnsafeMutableRawPointer,
                         rowBits: Int) -> Int? {
        var matches = hps_bucket_key_matches(buckets + bucket &* 64, key)
        while matches != 0 {
            let position = matches.trailingZeroBitCount
            let ref = Self.ref(buckets, bucket: bucket, position: position).pointee
            if ref != 0 && Self.member(of: ref, rowBits: rowBits) == member { return position }
            matches &= matches &- 1
        }
        return nil
    }

    /// Asks the CPU to start loading both buckets of a hash, a few inserts
    /// before it is inserted. (A stale address after a rebuild is harmless:
    /// a prefetch never faults.)
    @inline(__always)
    func prefetchBuckets(of hash: UInt64) {
        let (first, second) = Self.buckets(of: hash, count: bucketCount)
        hps_prefetch(buckets + first &* 64)
        hps_prefetch(buckets + second &* 64)
    }

    /// Inserts or replaces the vector of (member, key), stored as `codec` says.
    /// - Returns: true if the key was new.
    /// - Throws: `StoreError.partitionFull`, or `.unrepresentable` (table
    ///   left unnamed, for the caller) for an element the storage cannot
    ///   hold; the partition is then unchanged.
    func upsert(_ key: Int64, member: Int, hash: UInt64, vector: UnsafePointer<Float>, stamp: UInt32) throws(StoreError) -> Bool {
        var source = UnsafeRawPointer(vector)
        if codec.storage != .fp32 {
            if let element = codec.encode(vector, into: encoded) {
                throw .unrepresentable(table: "", key: key, element: element, value: vector[element], storage: codec.storage)
            }
            source = UnsafeRawPointer(encoded)
        }
        let rowBytes = codec.rowBytes
        if let slot = find(key, member: member, hash: hash) {
            let row = self.row(of: slotRef(slot))
            (vectors + row &* rowBytes).copyMemory(from: source, byteCount: rowBytes)
            stamps?[row] = stamp
            return false
        }
        if (count + 1) * Self.maxLoadDenominator > capacity * Self.maxLoadNumerator {
            rebuild(minimumBuckets: bucketCount + bucketCount / 2 + 4)
        }
        let row: Int
        if let free = freeRows.popLast() {
            row = Int(free)
        } else {
            guard rowsUsed < maxRows else { throw .partitionFull(table: "", rows: maxRows) }
            if rowsUsed == rowCapacity { growRows(to: min(maxRows, rowCapacity + rowCapacity / 2 + 16)) }
            row = rowsUsed
            rowsUsed += 1
        }
        (vectors + row &* rowBytes).copyMemory(from: source, byteCount: rowBytes)
        stamps?[row] = stamp
        if let homeless = place(key, ref: ref(member: member, row: row), hash: hash, in: buckets, count: bucketCount) {
            // The walk ended holding an entry with no room: grow, and place it there.
            rebuild(minimumBuckets: bucketCount + bucketCount / 4 + 4, adding: homeless)
        }
        count += 1
        return true
    }

    /// Places an entry not yet in the index by cuckoo insertion: into its
    /// first bucket with a free slot, else it displaces a random entry of one
    /// of its buckets, which moves to its other bucket, and so on.
    /// - Returns: nil when every entry has a slot; otherwise the entry the
    ///   walk holds after `maxKicks` displacements, which is in no slot.
    private func place(_ key: Int64, ref: UInt32, hash: UInt64, in buckets: UnsafeMutableRawPointer,
                       count: Int) -> (key: Int64, ref: UInt32)? {
        var key = key, ref = ref
        var (first, second) = Self.buckets(of: hash, count: count)
        for _ in 0...Self.maxKicks {
            for pick in 0..<2 {
                let bucket = pick == 0 ? first : second
                for slot in (bucket * 5)..<(bucket * 5 + 5) where Self.ref(buckets, slot).pointee == 0 {
                    Self.key(buckets, slot).pointee = key
                    Self.ref(buckets, slot).pointee = ref
                    return nil
                }
            }
            // Both full: displace a random entry of one of them.
            let draw = kickRandom.next()
            let bucket = draw & 1 == 0 ? first : second
            let slot = bucket * 5 + Int((draw >> 1) % 5)
            let displacedKey = Self.key(buckets, slot).pointee, displacedRef = Self.ref(buckets, slot).pointee
            Self.key(buckets, slot).pointee = key
            Self.ref(buckets, slot).pointee = ref
            key = displacedKey
            ref = displacedRef
            let (a, b) = Self.buckets(of: KeyHash.hash(key, member: member(of: ref)), count: count)
            // It must leave the bucket it was in.
            (first, second) = a == bucket ? (b, b) : (a, a)
        }
        return (key, ref)
    }

    private func growRows(to rows: Int) {
        vectors = LargeAllocation.reallocate(vectors, from: rowCapacity * codec.rowBytes, to: rows * codec.rowBytes)
        if let s = stamps { stamps = Self.reallocate(s, from: rowCapacity, to: rows) }
        rowCapacity = rows
    }

    /// Returns the arena's whole pages past the rows in use (and the stamps'
    /// past theirs) to the system: `LargeAllocation.releaseTail`.
    func releaseUnusedRows() {
        LargeAllocation.releaseTail(vectors, used: rowsUsed * codec.rowBytes, of: rowCapacity * codec.rowBytes)
        if let stamps { LargeAllocation.releaseTail(stamps, used: rowsUsed * 4, of: rowCapacity * 4) }
    }

    /// Makes room for `additional` more keys without growing during the inserts.
    func reserve(additional: Int) {
        let keys = count + additional
        if keys * Self.maxLoadDenominator > capacity * Self.maxLoadNumerator {
            rebuild(minimumBuckets: Self.bucketCount(for: keys))
        }
        let rows = min(maxRows, rowsUsed + max(0, additional - freeRows.count))
        if rows > rowCapacity { growRows(to: rows) }
    }

    /// Replaces the index by one of at least `minimumBuckets` buckets holding
    /// the current entries, plus `adding`. When a
    /// cuckoo walk runs out of displacements the new index is dropped and a
    /// larger one tried: the current index stays intact until one succeeds,
    /// so no entry is lost.
    private func rebuild(minimumBuckets: Int, adding extra: (key: Int64, ref: UInt32)? = nil) {
        var newCount = max(4, minimumBuckets)
        while true {
            let fresh = LargeAllocation.allocate(bytes: newCount * 64)
            var homeless: (key: Int64, ref: UInt32)? = nil
            if let extra {
                homeless = place(extra.key, ref: extra.ref, hash: KeyHash.hash(extra.key, member: member(of: extra.ref)),
                                 in: fresh, count: newCount)
            }
            var slot = 0
            while homeless == nil && slot < capacity {
                let ref = slotRef(slot)
                if ref != 0 {
                    let key = slotKey(slot)
                    homeless = place(key, ref: ref, hash: KeyHash.hash(key, member: member(of: ref)),
                                     in: fresh, count: newCount)
                }
                slot += 1
            }
            if homeless == nil {
                LargeAllocation.release(buckets, bytes: bucketCount * 64)
                buckets = fresh
                bucketCount = newCount
                return
            }
            LargeAllocation.release(fresh, bytes: newCount * 64)
            newCount += newCount / 4 + 4
        }
    }

    /// Erases (member, key).
    /// - Returns: true if it was present.
    func erase(_ key: Int64, member: Int, hash: UInt64) -> Bool {
        guard let slot = find(key, member: member, hash: hash) else { return false }
        freeRows.append(UInt32(row(of: slotRef(slot))))
        Self.ref(buckets, slot).pointee = 0
        count -= 1
        return true
    }

    /// Evicts keys until at most `target` remain, choosing victims by `policy`.
    /// - Returns: the number evicted.
    func evict(downTo target: Int, policy: OverflowPolicy, random: inout SplitMix64) -> Int {
        let excess = count - max(0, target)
        guard excess > 0 else { return 0 }
        var victims = [Bool](repeating: false, count: capacity)
        if policy == .evictRandom || stamps == nil {
            var chosen = 0
            while chosen < excess {
                let slot = Int(random.next() % UInt64(capacity))
                if slotRef(slot) != 0 && !victims[slot] {
                    victims[slot] = true
                    chosen += 1
                }
            }
        } else if let stamps {
            // The excess smallest stamps (oldest epoch, or fewest uses) go.
            var order: [(stamp: UInt32, slot: Int)] = []
            order.reserveCapacity(count)
            for slot in 0..<capacity where slotRef(slot) != 0 {
                order.append((stamps[row(of: slotRef(slot))], slot))
            }
            order.sort { $0.stamp < $1.stamp || ($0.stamp == $1.stamp && $0.slot < $1.slot) }
            for i in 0..<excess { victims[order[i].slot] = true }
        }
        // The victims' rows join the free list and their slots empty; the
        // index keeps its size, so every other entry keeps its slot.
        for slot in 0..<capacity where victims[slot] {
            freeRows.append(UInt32(row(of: slotRef(slot))))
            Self.ref(buckets, slot).pointee = 0
        }
        count -= excess
        return excess
    }
}
