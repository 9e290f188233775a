import Glibc

/// One partition of a `HashMapTable`: an open-addressing index from
/// (member, key) to a row of a contiguous vector arena.
///
/// Layout (why): the index is an array of 64-byte buckets of five slots, five
/// keys (8 bytes each) then five refs (4 bytes each), so that a probe reads
/// one cache line, and a table filled to 7/8 costs about 15 bytes per key
/// beyond its vectors. A ref is `((member << rowBits) | row) + 1`, 0 meaning
/// an empty slot. Slots are numbered bucket × 5 + position and probed linearly. Vectors live
/// in one arena per partition, allocated with malloc so that capacity not yet
/// used costs no resident memory and growth is a remap, not a copy.
///
/// Thread safety: none by itself; `HashMapTable` holds `lock` shared for
/// lookups and exclusive for changes.
final class HashMapPartition: @unchecked Sendable {
    let lock = ReadWriteLock()
    let vecSize: Int
    let rowBits: Int
    let maxRows: Int

    /// `capacity / 5` buckets of 64 bytes.
    private(set) var buckets: UnsafeMutableRawPointer
    /// Slots: five per bucket.
    private(set) var capacity: Int
    private(set) var count = 0

    private(set) var vectors: UnsafeMutablePointer<Float>
    private(set) var rowCapacity: Int
    private var rowsUsed = 0
    private var freeRows: [UInt32] = []

    /// Per row: the last access epoch (evict_oldest) or the access count
    /// (evict_least_used); nil when the overflow policy does not need it.
    private(set) var stamps: UnsafeMutablePointer<UInt32>?

    static let maxLoadNumerator = 7
    static let maxLoadDenominator = 8

    init(vecSize: Int, memberBits: Int, expectedKeys: Int, trackAccess: Bool) {
        self.vecSize = vecSize
        self.rowBits = 32 - memberBits
        self.maxRows = (1 << rowBits) - 2
        let rows = max(16, expectedKeys)
        capacity = Self.capacity(for: rows)
        buckets = LargeAllocation.allocate(bytes: capacity / 5 * 64)
        rowCapacity = rows
        vectors = Self.allocateZeroed(Float.self, rows * vecSize)
        stamps = trackAccess ? Self.allocateZeroed(UInt32.self, rows) : nil
    }

    deinit {
        LargeAllocation.release(buckets, bytes: capacity / 5 * 64)
        LargeAllocation.release(vectors, bytes: rowCapacity * vecSize * 4)
        if let stamps { LargeAllocation.release(stamps, bytes: rowCapacity * 4) }
    }

    /// The number of slots (a multiple of 5) that holds `keys` keys at just under the maximum load.
    static func capacity(for keys: Int) -> Int {
        let slots = max(20, (keys * maxLoadDenominator + maxLoadNumerator - 1) / maxLoadNumerator + 1)
        return (slots + 4) / 5 * 5
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
        return (buckets + (bucket &* 64 &+ 40 &+ (slot &- bucket &* 5) &* 4)).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) private func slotKey(_ slot: Int) -> Int64 { Self.key(buckets, slot).pointee }
    @inline(__always) private func slotRef(_ slot: Int) -> UInt32 { Self.ref(buckets, slot).pointee }
    @inline(__always) private func setSlot(_ slot: Int, key: Int64, ref: UInt32) {
        Self.key(buckets, slot).pointee = key
        Self.ref(buckets, slot).pointee = ref
    }

    private static func allocateZeroed<T>(_: T.Type, _ n: Int) -> UnsafeMutablePointer<T> {
        LargeAllocation.allocate(bytes: n * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: n)
    }

    private static func reallocate<T>(_ p: UnsafeMutablePointer<T>, from old: Int, to new: Int) -> UnsafeMutablePointer<T> {
        LargeAllocation.reallocate(UnsafeMutableRawPointer(p), from: old * MemoryLayout<T>.stride,
                                   to: new * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: new)
    }

    private static func release<T>(_ p: UnsafeMutablePointer<T>, _ n: Int) {
        LargeAllocation.release(UnsafeMutableRawPointer(p), bytes: n * MemoryLayout<T>.stride)
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
    func member(of ref: UInt32) -> Int {
        rowBits == 32 ? 0 : Int(truncatingIfNeeded: (ref &- 1) >> UInt32(rowBits))
    }

    /// The slot holding (member, key), or nil.
    @inline(__always)
    func find(_ key: Int64, member: Int, hash: UInt64) -> Int? {
        var slot = KeyHash.slot(hash, capacity: capacity)
        while true {
            let ref = slotRef(slot)
            if ref == 0 { return nil }
            if slotKey(slot) == key && self.member(of: ref) == member { return slot }
            slot &+= 1
            if slot == capacity { slot = 0 }
        }
    }

    /// Inserts or replaces the vector of (member, key).
    /// - Returns: true if the key was new.
    func upsert(_ key: Int64, member: Int, hash: UInt64, vector: UnsafePointer<Float>, stamp: UInt32) throws(StoreError) -> Bool {
        if let slot = find(key, member: member, hash: hash) {
            let row = self.row(of: slotRef(slot))
            (vectors + row * vecSize).update(from: vector, count: vecSize)
            stamps?[row] = stamp
            return false
        }
        if (count + 1) * Self.maxLoadDenominator > capacity * Self.maxLoadNumerator {
            rehash(capacity: capacity + capacity / 2 + 16)
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
        (vectors + row * vecSize).update(from: vector, count: vecSize)
        stamps?[row] = stamp
        place(key, ref: ref(member: member, row: row), hash: hash)
        count += 1
        return true
    }

    private func place(_ key: Int64, ref: UInt32, hash: UInt64) {
        var slot = KeyHash.slot(hash, capacity: capacity)
        while slotRef(slot) != 0 {
            slot &+= 1
            if slot == capacity { slot = 0 }
        }
        setSlot(slot, key: key, ref: ref)
    }

    private func growRows(to rows: Int) {
        vectors = Self.reallocate(vectors, from: rowCapacity * vecSize, to: rows * vecSize)
        if let s = stamps { stamps = Self.reallocate(s, from: rowCapacity, to: rows) }
        rowCapacity = rows
    }

    /// Makes room for `additional` more keys without growing during the inserts.
    func reserve(additional: Int) {
        let keys = count + additional
        if keys * Self.maxLoadDenominator > capacity * Self.maxLoadNumerator {
            rehash(capacity: Self.capacity(for: keys))
        }
        let rows = min(maxRows, rowsUsed + max(0, additional - freeRows.count))
        if rows > rowCapacity { growRows(to: rows) }
    }

    private func rehash(capacity newCapacity: Int) {
        let old = buckets, oldCapacity = capacity
        capacity = (newCapacity + 4) / 5 * 5
        buckets = LargeAllocation.allocate(bytes: capacity / 5 * 64)
        for slot in 0..<oldCapacity {
            let ref = Self.ref(old, slot).pointee
            if ref != 0 {
                let key = Self.key(old, slot).pointee
                place(key, ref: ref, hash: KeyHash.hash(key, member: member(of: ref)))
            }
        }
        LargeAllocation.release(old, bytes: oldCapacity / 5 * 64)
    }

    /// Erases (member, key).
    /// - Returns: true if it was present.
    func erase(_ key: Int64, member: Int, hash: UInt64) -> Bool {
        guard let slot = find(key, member: member, hash: hash) else { return false }
        removeSlot(slot)
        return true
    }

    /// Empties a slot, frees its row and shifts later entries of its cluster
    /// back (no tombstones, so probes stay short after erases).
    private func removeSlot(_ slot: Int) {
        freeRows.append(UInt32(row(of: slotRef(slot))))
        var hole = slot
        var next = slot
        while true {
            next &+= 1
            if next == capacity { next = 0 }
            let ref = slotRef(next)
            if ref == 0 { break }
            let home = KeyHash.slot(KeyHash.hash(slotKey(next), member: member(of: ref)), capacity: capacity)
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let homeInRange = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeInRange {
                setSlot(hole, key: slotKey(next), ref: ref)
                hole = next
            }
        }
        Self.ref(buckets, hole).pointee = 0
        count -= 1
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
        // Rebuild the index without the victims; their rows join the free list.
        let old = buckets
        buckets = LargeAllocation.allocate(bytes: capacity / 5 * 64)
        for slot in 0..<capacity {
            let ref = Self.ref(old, slot).pointee
            guard ref != 0 else { continue }
            if victims[slot] {
                freeRows.append(UInt32(row(of: ref)))
            } else {
                let key = Self.key(old, slot).pointee
                place(key, ref: ref, hash: KeyHash.hash(key, member: member(of: ref)))
            }
        }
        LargeAllocation.release(old, bytes: capacity / 5 * 64)
        count -= excess
        return excess
    }
}
