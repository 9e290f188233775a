import HPS

/// The host-side build of a GPU table: the slots of its hash index and its
/// vectors, laid out as the kernel reads them. Kept apart from the upload so
/// that it is checked on machines without a GPU.
///
/// Layout: `capacity` slots of two 64-bit words, the key, then the ref
/// `((member << rowBits) | row) + 1` in the low 32 bits (0: empty), probed
/// linearly from `KeyHash.slot(KeyHash.hash(key, member), capacity)`; rows
/// are the members' rows in order.
struct GPUTableIndex {
    /// Slots: capacity × 2 words.
    var slotWords: [UInt64]
    /// All members' vectors, member after member.
    var vectors: [Float]
    /// Slots.
    let capacity: Int
    /// Bits of a ref that hold the row.
    let rowBits: Int
    /// Distinct (member, key) pairs.
    private(set) var count = 0
    /// Builds the index; a key repeated within a member keeps its last row.
    init(members: [(keys: [Int64], vectors: [Float])], dim: Int) throws(CUDAError) {
        let rows = members.reduce(0) { $0 + $1.keys.count }
        let memberBits = members.count <= 1 ? 0 : (Int.bitWidth - (members.count - 1).leadingZeroBitCount)
        rowBits = 32 - memberBits
        guard rows < (1 << rowBits) - 1 else {
            throw .unsupported("a GPU table of \(members.count) members holds at most \((1 << rowBits) - 2) rows, not \(rows)")
        }
        // At most half full, so that a probe rarely reads a second slot.
        capacity = max(16, rows * 2)
        slotWords = [UInt64](repeating: 0, count: capacity * 2)
        vectors = []
        vectors.reserveCapacity(rows * dim)
        var row = 0
        for (member, table) in members.enumerated() {
            guard table.vectors.count == table.keys.count * dim else {
                throw .unsupported("member \(member) has \(table.vectors.count) floats for \(table.keys.count) keys of vec size \(dim)")
            }
            vectors.append(contentsOf: table.vectors)
            for key in table.keys {
                insert(key, member: member, row: row)
                row += 1
            }
        }
    }

    /// Points (member, key) at `row`, adding it if absent.
    mutating func insert(_ key: Int64, member: Int, row: Int) {
        let ref = UInt64(UInt32(truncatingIfNeeded: (member << rowBits) | row) &+ 1)
        var slot = KeyHash.slot(KeyHash.hash(key, member: member), capacity: capacity)
        while true {
            let stored = slotWords[slot * 2 + 1]
            if stored == 0 {
                slotWords[slot * 2] = UInt64(bitPattern: key)
                slotWords[slot * 2 + 1] = ref
                count += 1
                return
            }
            if slotWords[slot * 2] == UInt64(bitPattern: key) && self.member(of: stored) == member {
                slotWords[slot * 2 + 1] = ref  // the last row wins
                return
            }
            slot = slot + 1 == capacity ? 0 : slot + 1
        }
    }

    private func member(of ref: UInt64) -> Int {
        rowBits == 32 ? 0 : Int((UInt32(truncatingIfNeeded: ref) &- 1) >> UInt32(rowBits))
    }

    /// The row of (member, key), probing as the kernel does; nil when absent.
    func row(of key: Int64, member: Int) -> Int? {
        var slot = KeyHash.slot(KeyHash.hash(key, member: member), capacity: capacity)
        while true {
            let stored = slotWords[slot * 2 + 1]
            if stored == 0 { return nil }
            if slotWords[slot * 2] == UInt64(bitPattern: key) && self.member(of: stored) == member {
                let mask = rowBits == 32 ? UInt32.max : (UInt32(1) << UInt32(rowBits)) - 1
                return Int((UInt32(truncatingIfNeeded: stored) &- 1) & mask)
            }
            slot = slot + 1 == capacity ? 0 : slot + 1
        }
    }
}
