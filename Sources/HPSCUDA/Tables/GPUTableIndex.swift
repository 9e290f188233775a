import HPS

/// The host-side build of a static GPU table: its hash index and its
/// vectors, laid out as the kernel reads them. Kept apart from the upload so
/// that it is checked on machines without a GPU.
///
/// Layout (a ranked two-choice index): `capacity` slots in buckets of four
/// (32 bytes of keys, one DRAM sector). A (member, key) sits in one of two
/// buckets chosen by the two halves of `KeyHash.hash(key, member)`, placed
/// by cuckoo insertion (the first bucket while it has room), so a lookup
/// reads its first bucket, then its second, and never probes further. A slot holds only its key (and, for a fused table, its
/// member); whether it is taken is a bit of `blocks`, and the vectors are
/// stored in slot order, so a key's row is the number of taken slots before
/// its own: the block's count of rows before it plus the taken bits below it.
/// `blocks` holds two words per 64 slots: the taken bits, then the rows before.
///
/// Why: the random read of the index costs a lookup DRAM time that the
/// vectors' bytes do not account for, and a warp waits for its slowest key.
/// Eight-byte slots filled to `maximumLoad` (9.4 bytes a key, against 32 for
/// the (key, row) slots at half load this replaces) keep more of the index
/// in L2, where the lookup kernel asks it to stay, and no key probes more
/// than two buckets (linear probing at 0.8 made warps wait on long probes).
struct GPUTableIndex {
    /// The most slots a table fills unless its `GPUTuning` says otherwise.
    static let maximumLoad = GPUTuning().indexLoad
    /// Slots per bucket.
    static let bucketSlots = 4
    /// Each slot's key (0 where free).
    var slotKeys: [Int64]
    /// Each slot's member; empty for a table of one member.
    var slotMembers: [UInt16]
    /// Per 64 slots: the taken bits, then the rows before.
    var blocks: [UInt64]
    /// The vectors, one row per taken slot in slot order.
    var vectors: [Float]
    /// Slots: a multiple of 64.
    private(set) var capacity: Int
    /// Distinct (member, key) pairs.
    private(set) var count = 0

    /// Builds the index, with slots for the rows at `load` (more if cuckoo
    /// walks run too long); a key repeated within a member keeps its last row.
    /// `name` names the table in errors.
    init(members: [(keys: [Int64], vectors: [Float])], dim: Int, load: Double = maximumLoad,
         name: String = "a GPU table") throws(CUDAError) {
        guard members.count <= Int(UInt16.max) + 1 else {
            throw .capacity(table: name, what: "members", limit: Int(UInt16.max) + 1, requested: members.count)
        }
        for (member, table) in members.enumerated() where table.vectors.count != table.keys.count * dim {
            throw .layoutMismatch(table: name, expected: "\(table.keys.count * dim) floats for member \(member) (\(table.keys.count) keys of vec size \(dim))",
                                  found: "\(table.vectors.count)")
        }
        let rows = members.reduce(0) { $0 + $1.keys.count }
        guard rows < Int(Int32.max) else {
            throw .capacity(table: name, what: "rows", limit: Int(Int32.max) - 1, requested: rows)
        }
        capacity = max(64, (Int((Double(rows) / load).rounded(.up)) + 63) / 64 * 64)
        slotKeys = []
        slotMembers = []
        blocks = []
        vectors = []
        // Each taken slot's row in the members' rows, as given. A cuckoo
        // walk that does not end (rare below the load) grows the slots.
        var sourceRows: [Int32]
        while true {
            if let placed = place(members) { sourceRows = placed; break }
            capacity = (capacity + capacity / 4 + 63) / 64 * 64
        }
        // The vectors in slot order, and each block's rows before it.
        var memberStarts = [0]
        for table in members { memberStarts.append(memberStarts.last! + table.keys.count) }
        vectors.reserveCapacity(count * dim)
        var before: UInt64 = 0
        for block in 0..<(capacity / 64) {
            blocks[block * 2 + 1] = before
            before += UInt64(blocks[block * 2].nonzeroBitCount)
        }
        for slot in 0..<capacity where sourceRows[slot] >= 0 {
            let row = Int(sourceRows[slot])
            let member = slotMembers.isEmpty ? 0 : Int(slotMembers[slot])
            let start = (row - memberStarts[member]) * dim
            vectors.append(contentsOf: members[member].vectors[start..<(start + dim)])
        }
    }

    /// Places every (member, key) in `capacity` slots, returning each slot's
    /// source row (-1 where free), or nil when a cuckoo walk runs too long.
    private mutating func place(_ members: [(keys: [Int64], vectors: [Float])]) -> [Int32]? {
        slotKeys = [Int64](repeating: 0, count: capacity)
        slotMembers = members.count > 1 ? [UInt16](repeating: 0, count: capacity) : []
        blocks = [UInt64](repeating: 0, count: capacity / 64 * 2)
        count = 0
        var sourceRows = [Int32](repeating: -1, count: capacity)
        var random = SplitMix64(seed: UInt64(capacity))
        var row: Int32 = 0
        for (member, table) in members.enumerated() {
            for key in table.keys {
                defer { row += 1 }
                var candidates = buckets(of: key, member: member)
                if let slot = find(key, member: member, in: candidates) {
                    sourceRows[slot] = row  // the last row wins
                    continue
                }
                // Into a free slot of either bucket, else evict a random
                // resident to its other bucket, and so on.
                var entry = (key: key, member: member, row: row)
                var bucket = candidates.0
                var kicks = 0
                while true {
                    if let slot = freeSlot(in: candidates.0) ?? freeSlot(in: candidates.1) {
                        take(slot, entry.key, member: entry.member)
                        sourceRows[slot] = entry.row
                        count += 1
                        break
                    }
                    kicks += 1
                    if kicks > 1000 { return nil }
                    let slot = bucket * Self.bucketSlots + Int(random.next() % UInt64(Self.bucketSlots))
                    let evicted = (key: slotKeys[slot], member: slotMembers.isEmpty ? 0 : Int(slotMembers[slot]),
                                   row: sourceRows[slot])
                    take(slot, entry.key, member: entry.member)
                    sourceRows[slot] = entry.row
                    entry = evicted
                    candidates = buckets(of: entry.key, member: entry.member)
                    bucket = candidates.0 == bucket ? candidates.1 : candidates.0
                }
            }
        }
        return sourceRows
    }

    /// The two buckets of (member, key): from the low and the high half of
    /// its hash, the second moved on by one when they meet. The kernel's
    /// hps_find_ranked computes the same.
    func buckets(of key: Int64, member: Int) -> (Int, Int) {
        let h = KeyHash.hash(key, member: member)
        let n = UInt64(capacity / Self.bucketSlots)
        let first = Int(((h & 0xFFFF_FFFF) &* n) >> 32)
        var second = Int(((h >> 32) &* n) >> 32)
        if second == first { second = first + 1 == Int(n) ? 0 : first + 1 }
        return (first, second)
    }

    private func taken(_ slot: Int) -> Bool {
        blocks[slot / 64 * 2] & (1 << UInt64(slot % 64)) != 0
    }

    private mutating func take(_ slot: Int, _ key: Int64, member: Int) {
        slotKeys[slot] = key
        if !slotMembers.isEmpty { slotMembers[slot] = UInt16(member) }
        blocks[slot / 64 * 2] |= 1 << UInt64(slot % 64)
    }

    private func freeSlot(in bucket: Int) -> Int? {
        let first = bucket * Self.bucketSlots
        return (first..<(first + Self.bucketSlots)).first { !taken($0) }
    }

    /// The slot that holds (member, key), nil when none does; `in` is its
    /// two buckets when the caller has them.
    func find(_ key: Int64, member: Int, in candidates: (Int, Int)? = nil) -> Int? {
        let (first, second) = candidates ?? buckets(of: key, member: member)
        for pick in 0..<2 {
            let bucket = pick == 0 ? first : second
            for slot in (bucket * Self.bucketSlots)..<((bucket + 1) * Self.bucketSlots)
            where taken(slot) && slotKeys[slot] == key && (slotMembers.isEmpty || Int(slotMembers[slot]) == member) {
                return slot
            }
        }
        return nil
    }

    /// The key of row `row` (the row-th taken slot), by a scan: for errors.
    func key(ofRow row: Int) -> Int64 {
        var seen = 0
        for slot in 0..<capacity where taken(slot) {
            if seen == row { return slotKeys[slot] }
            seen += 1
        }
        return 0
    }

    /// The row of (member, key), as the kernel finds it; nil when absent.
    func row(of key: Int64, member: Int) -> Int? {
        guard let slot = find(key, member: member) else { return nil }
        let below = blocks[slot / 64 * 2] & ((1 << UInt64(slot % 64)) - 1)
        return Int(blocks[slot / 64 * 2 + 1]) + below.nonzeroBitCount
    }
}
