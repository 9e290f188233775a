import CHPSSupport
package import HPS

/// A table of the mapped tier: one mapped folder per member.
///
/// Lookups prefetch the index slot of key i + d while key i is probed and
/// its row copied from the mapped `emb_vector`; a lookup of many keys is
/// split across up to `parallelism` threads.
///
/// Thread safety: immutable after `attach`; lookups run concurrently.
package final class MappedTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag.
    package let tag: String
    /// Floats per vector.
    package let vecSize: Int
    package let members: [MappedMember]
    /// Where damage found by a lookup is recorded (the store's).
    let faults: TierFaults

    /// How many keys ahead the index slot is prefetched.
    static let distance = 8

    init(tag: String, vecSize: Int, members: [MappedMember], faults: TierFaults) {
        self.tag = tag
        self.vecSize = vecSize
        self.members = members
        self.faults = faults
    }

    /// The number of member tables.
    package var memberCount: Int { members.count }

    /// Distinct keys, all members together.
    package var count: Int { members.reduce(0) { $0 + $1.distinct } }

    /// Per member, whether attaching built its index (false: an existing index was mapped).
    package var rebuiltIndexes: [Bool] { members.map(\.rebuilt) }

    /// Per member, the path of its index file.
    package var indexPaths: [String] { members.map(\.indexPath) }

    /// Keys below which a lookup is not split across threads.
    static let parallelMinimum = 16_384

    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        LookupSplit.run(runs, parallelism: parallelism, minimumPerPiece: Self.parallelMinimum, missed: missed) {
            run, offset, count, flatStart, missed in
            lookupRange(runs, run: run, offset: offset, count: count, flatStart: flatStart, defaults: defaults, missed: missed)
        }
    }

    /// Looks up `count` keys starting at key `offset` of run `run` (flat index
    /// `flatStart`), writing misses at `missed`.
    private func lookupRange(_ runs: UnsafeBufferPointer<LookupRun>, run firstRun: Int, offset firstOffset: Int, count: Int,
                             flatStart: Int, defaults: UnsafeBufferPointer<Float>?, missed: UnsafeMutablePointer<Int>?) -> Int {
        let bytes = vecSize &* 4
        let d = Self.distance
        var misses = 0
        var flat = flatStart
        var run = firstRun, offset = firstOffset, remaining = count
        while remaining > 0 {
            let current = runs[run]
            let end = min(current.count, offset &+ remaining)
            defer {
                remaining &-= end &- offset
                flat &+= end &- offset
                run &+= 1
                offset = 0
            }
            let memberIndex = current.member
            let memberDefault: Float? = defaults.flatMap { memberIndex >= 0 && memberIndex < $0.count ? $0[memberIndex] : nil }
            guard memberIndex >= 0 && memberIndex < members.count else {
                // No such member: every key misses.
                for i in offset..<end {
                    if let memberDefault { (current.output + i &* vecSize).update(repeating: memberDefault, count: vecSize) }
                    missed?[misses] = flat &+ (i &- offset)
                    misses &+= 1
                }
                continue
            }
            let member = members[memberIndex]
            let missesBefore = misses
            for i in offset..<min(offset &+ d, end) {
                if let slot = member.homeSlot(current.keys[i]) { hps_prefetch(slot) }
            }
            for i in offset..<end {
                if i &+ d < end, let slot = member.homeSlot(current.keys[i &+ d]) { hps_prefetch(slot) }
                let output = current.output + i &* vecSize
                if let source = member.find(current.keys[i]) {
                    UnsafeMutableRawPointer(output).copyMemory(from: source, byteCount: bytes)
                } else {
                    if let memberDefault { output.update(repeating: memberDefault, count: vecSize) }
                    missed?[misses] = flat &+ (i &- offset)
                    misses &+= 1
                }
            }
            // Checked after the copies: rows read from a file that shrank
            // (zero pages) or is being rewritten are not served.
            if member.isDamaged {
                if let damage = member.takeDamage(table: tag) { faults.record(damage) }
                misses = missesBefore
                for i in offset..<end {
                    if let memberDefault { (current.output + i &* vecSize).update(repeating: memberDefault, count: vecSize) }
                    missed?[misses] = flat &+ (i &- offset)
                    misses &+= 1
                }
            }
        }
        return misses
    }

    /// Checks every member's files against those mapped (`MappedMember.checkFiles`),
    /// recording what changed.
    func checkFiles() {
        for member in members {
            if let change = member.checkFiles(table: tag) { faults.record(change) }
        }
    }

    /// Refused: the tier serves its model files read-only.
    package func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        throw .backend(kind: "mapped", table: tag, operation: nil, cause: MappedError.readOnly(table: tag, operation: "insert into"))
    }

    /// Erases nothing: the tier serves its model files read-only.
    package func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int { 0 }
}
