import CHPSSupport
public import HPS

/// A table of the mapped tier: one mapped folder per member.
///
/// Lookups are pipelined like `HashMapTable`'s: the index slot of key
/// i + d is prefetched while key i is probed and its row copied from the
/// mapped `emb_vector`.
///
/// Thread safety: immutable after `attach`; lookups run concurrently.
public final class MappedTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag.
    public let tag: String
    /// Floats per vector.
    public let vecSize: Int
    let members: [MappedMember]

    /// How many keys ahead the index slot is prefetched.
    static let distance = 8

    init(tag: String, vecSize: Int, members: [MappedMember]) {
        self.tag = tag
        self.vecSize = vecSize
        self.members = members
    }

    /// The number of member tables.
    public var memberCount: Int { members.count }

    /// Distinct keys, all members together.
    public var count: Int { members.reduce(0) { $0 + $1.distinct } }

    /// Per member, whether attaching built its index (false: an existing index was mapped).
    public var rebuiltIndexes: [Bool] { members.map(\.rebuilt) }

    /// Per member, the path of its index file.
    public var indexPaths: [String] { members.map { MappedMember.indexPath($0.folder) } }

    public func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        let bytes = vecSize &* 4
        let d = Self.distance
        var misses = 0
        var flat = 0
        for run in runs {
            guard run.member >= 0 && run.member < members.count else {
                // No such member: every key misses.
                for i in 0..<run.count {
                    if let defaults, run.member >= 0 && run.member < defaults.count {
                        (run.output + i &* vecSize).update(repeating: defaults[run.member], count: vecSize)
                    }
                    missed?[misses] = flat &+ i
                    misses &+= 1
                }
                flat &+= run.count
                continue
            }
            let member = members[run.member]
            for i in 0..<min(d, run.count) {
                if let slot = member.homeSlot(run.keys[i]) { hps_prefetch(slot) }
            }
            for i in 0..<run.count {
                if i &+ d < run.count, let slot = member.homeSlot(run.keys[i &+ d]) { hps_prefetch(slot) }
                let output = run.output + i &* vecSize
                if let source = member.find(run.keys[i]) {
                    UnsafeMutableRawPointer(output).copyMemory(from: source, byteCount: bytes)
                } else {
                    if let defaults { output.update(repeating: defaults[run.member], count: vecSize) }
                    missed?[misses] = flat &+ i
                    misses &+= 1
                }
            }
            flat &+= run.count
        }
        return misses
    }

    /// Refused: the tier serves its model files read-only.
    public func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        throw .backend(kind: "mapped", message: MappedError.readOnly(table: tag, operation: "insert into").description)
    }

    /// Erases nothing: the tier serves its model files read-only.
    public func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int { 0 }
}
