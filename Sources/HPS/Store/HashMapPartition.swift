import Glibc

/// One partition of a `HashMapTable`: an open-addressing index from
/// (member, key) to a row of a contiguous vector arena.
///
/// Layout (why): the index is two parallel arrays, keys (8 bytes) and refs
/// (4 bytes), filled up to 7/8, so a loaded table costs about 14 bytes per key
/// beyond its vectors. A ref is `((member << rowBits) | row) + 1`, 0 meaning
/// an empty slot, so a probe reads one key line and one ref line. Vectors live
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

    private(set) var slotKeys: UnsafeMutablePointer<Int64>
    private(set) var slotRefs: UnsafeMutablePointer<UInt32>
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
        slotKeys = Self.allocateZeroed(Int64.self, capacity)
        slotRefs = Self.allocateZeroed(UInt32.self, capacity)
        rowCapacity = rows
        vectors = Self.allocateZeroed(Float.self, rows * vecSize)
        stamps = trackAccess ? Self.allocateZeroed(UInt32.self, rows) : nil
    }

    deinit {
        free(slotKeys)
        free(slotRefs)
        free(vectors)
        free(stamps)
    }

    /// The number of slots that holds `keys` keys at just under the maximum load.
    static func capacity(for keys: Int) -> Int {
        max(16, (keys * maxLoadDenominator + maxLoadNumerator - 1) / maxLoadNumerator + 1)
    }

    private static func allocateZeroed<T>(_: T.Type, _ n: Int) -> UnsafeMutablePointer<T> {
        guard let raw = calloc(max(1, n), MemoryLayout<T>.stride) else {
            fatalError("out of memory allocating \(n) × \(MemoryLayout<T>.stride) bytes")
        }
        return raw.assumingMemoryBound(to: T.self)
    }

    private static func reallocate<T>(_ p: UnsafeMutablePointer<T>, _ n: Int) -> UnsafeMutablePointer<T> {
        guard let raw = realloc(p, max(1, n) * MemoryLayout<T>.stride) else {
            fatalError("out of memory growing to \(n) × \(MemoryLayout<T>.stride) bytes")
        }
        return raw.assumingMemoryBound(to: T.self)
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
            let ref = slotRefs[slot]
            if ref == 0 { return nil }
            if slotKeys[slot] == key && self.member(of: ref) == member { return slot }
            slot &+= 1
            if slot == capacity { slot = 0 }
        }
    }

    /// The vector of the row a slot refers to.
    @inline(__always)
    func vector(atSlot slot: Int) -> UnsafeMutablePointer<Float> {
        vectors + row(of: slotRefs[slot]) &* vecSize
    }

    /// Inserts or replaces the vector of (member, key).
    /// - Returns: true if the key was new.
    func upsert(_ key: Int64, member: Int, hash: UInt64, vector: UnsafePointer<Float>, stamp: UInt32) throws(StoreError) -> Bool {
        if let slot = find(key, member: member, hash: hash) {
            let row = self.row(of: slotRefs[slot])
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
        while slotRefs[slot] != 0 {
            slot &+= 1
            if slot == capacity { slot = 0 }
        }
        slotKeys[slot] = key
        slotRefs[slot] = ref
    }

    private func growRows(to rows: Int) {
        vectors = Self.reallocate(vectors, rows * vecSize)
        if let s = stamps { stamps = Self.reallocate(s, rows) }
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
        let oldKeys = slotKeys, oldRefs = slotRefs, oldCapacity = capacity
        slotKeys = Self.allocateZeroed(Int64.self, newCapacity)
        slotRefs = Self.allocateZeroed(UInt32.self, newCapacity)
        capacity = newCapacity
        for slot in 0..<oldCapacity where oldRefs[slot] != 0 {
            let key = oldKeys[slot], ref = oldRefs[slot]
            place(key, ref: ref, hash: KeyHash.hash(key, member: member(of: ref)))
        }
        free(oldKeys)
        free(oldRefs)
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
        freeRows.append(UInt32(row(of: slotRefs[slot])))
        var hole = slot
        var next = slot
        while true {
            next &+= 1
            if next == capacity { next = 0 }
            let ref = slotRefs[next]
            if ref == 0 { break }
            let home = KeyHash.slot(KeyHash.hash(slotKeys[next], member: member(of: ref)), capacity: capacity)
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let homeInRange = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeInRange {
                slotKeys[hole] = slotKeys[next]
                slotRefs[hole] = ref
                hole = next
            }
        }
        slotRefs[hole] = 0
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
                if slotRefs[slot] != 0 && !victims[slot] {
                    victims[slot] = true
                    chosen += 1
                }
            }
        } else if let stamps {
            // The excess smallest stamps (oldest epoch, or fewest uses) go.
            var order: [(stamp: UInt32, slot: Int)] = []
            order.reserveCapacity(count)
            for slot in 0..<capacity where slotRefs[slot] != 0 {
                order.append((stamps[row(of: slotRefs[slot])], slot))
            }
            order.sort { $0.stamp < $1.stamp || ($0.stamp == $1.stamp && $0.slot < $1.slot) }
            for i in 0..<excess { victims[order[i].slot] = true }
        }
        // Rebuild the index without the victims; their rows join the free list.
        let oldKeys = slotKeys, oldRefs = slotRefs
        slotKeys = Self.allocateZeroed(Int64.self, capacity)
        slotRefs = Self.allocateZeroed(UInt32.self, capacity)
        for slot in 0..<capacity where oldRefs[slot] != 0 {
            if victims[slot] {
                freeRows.append(UInt32(row(of: oldRefs[slot])))
            } else {
                let key = oldKeys[slot], ref = oldRefs[slot]
                place(key, ref: ref, hash: KeyHash.hash(key, member: member(of: ref)))
            }
        }
        free(oldKeys)
        free(oldRefs)
        count -= excess
        return excess
    }

    /// Calls `body` with (member, key, vector) for every entry.
    func forEach(_ body: (Int, Int64, UnsafePointer<Float>) -> Void) {
        for slot in 0..<capacity where slotRefs[slot] != 0 {
            body(member(of: slotRefs[slot]), slotKeys[slot], vector(atSlot: slot))
        }
    }

    /// Bytes allocated for this partition beyond the vectors of its keys.
    var overheadBytes: Int {
        capacity * 12 + (rowCapacity - count) * vecSize * 4 + (stamps == nil ? 0 : rowCapacity * 4) + freeRows.capacity * 4
    }
}
