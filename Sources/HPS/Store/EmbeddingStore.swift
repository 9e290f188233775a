/// One tier of the hierarchy below the cache: a store of embedding tables.
///
/// A store knows nothing of the tiers above or below it. Every operation is a
/// batch: one call per tier per request, never one per key.
///
/// Thread safety: every method may be called concurrently with every other.
package protocol EmbeddingStore: AnyObject, Sendable {
    /// A short name for logs and statistics, such as `hash_map`.
    var kind: String { get }

    /// Creates (or returns the existing) table `tag` holding `members` member
    /// tables of vectors of `vecSize` floats, sized for about `expectedKeys` keys.
    /// - Throws: `StoreError.layoutMismatch` if the table exists with another layout.
    func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable

    /// `createTable` with rows stored as `storage` says (quantized on insert,
    /// decoded to float32 by lookups).
    /// - Throws: `StoreError.storageUnsupported` from a store that keeps
    ///   float32 only (the default for any storage but fp32).
    func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                     storage: VectorStorage) throws(StoreError) -> any EmbeddingStoreTable

    /// The table `tag`, or nil.
    func table(_ tag: String) -> (any EmbeddingStoreTable)?

    /// Removes table `tag` and its rows (a model unloaded, or an old version
    /// of it replaced): the store forgets it and frees or deletes its data.
    /// The caller drops a table only when no lookup uses it any more. A tag
    /// the store does not hold is no error.
    /// - Throws: `StoreError.backend` when the data could not be deleted
    ///   (the store has forgotten the table all the same).
    func dropTable(_ tag: String) throws(StoreError)

    /// The tags of all tables, sorted.
    var tableTags: [String] { get }

    /// Whether a lookup may wait on a network or a disk (true unless the
    /// store lives in this process's memory): sessions over such a store run
    /// their lookups on a thread pool, and a session on the CPU puts a
    /// bounded cache in front of it.
    var mayBlock: Bool { get }

    /// Work the store does in the background while it is served (keeping
    /// connections and their routing fresh): its owner runs each until shutdown.
    var backgroundWork: [any BackgroundWork] { get }

    /// Faults met while serving that lookups answered as misses (a failed
    /// read, a damaged file), or nil for a store that has none to report.
    var faults: TierFaults? { get }
}

extension EmbeddingStore {
    /// float32 only.
    package func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int,
                             storage: VectorStorage) throws(StoreError) -> any EmbeddingStoreTable {
        guard storage == .fp32 else { throw .storageUnsupported(kind: kind, table: tag, storage: storage) }
        return try createTable(tag, vecSize: vecSize, members: members, expectedKeys: expectedKeys)
    }

    /// A store waits on something outside this process's memory unless it says otherwise.
    package var mayBlock: Bool { true }
    /// No background work.
    package var backgroundWork: [any BackgroundWork] { [] }
    /// No faults to report.
    package var faults: TierFaults? { nil }
}

/// One table of a store. A fused table holds several member tables whose keys
/// are kept apart: a key of member 0 never answers a lookup of member 1.
///
/// Thread safety: lookups, inserts and erases may run concurrently.
package protocol EmbeddingStoreTable: AnyObject, Sendable {
    /// The table's tag, `hps_et.<model>.<table>`.
    var tag: String { get }
    /// Floats per vector.
    var vecSize: Int { get }
    /// The number of member tables.
    var memberCount: Int { get }
    /// The number of keys held, all members together.
    var count: Int { get }

    /// Looks up every key of every run.
    ///
    /// - Parameters:
    ///   - runs: the keys and their output rows (see `LookupRun`).
    ///   - defaults: one value per member; a missing key's output row is filled
    ///     with its member's value. Nil leaves missing rows untouched.
    ///   - missed: room for as many indices as there are keys in all runs, or nil;
    ///     receives the flat index (counting across runs in order) of each
    ///     missing key, ascending.
    ///   - parallelism: threads this call may use.
    /// - Returns: the number of missing keys.
    func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int

    /// Inserts or replaces `keys.count` vectors of `member`.
    /// - Parameters:
    ///   - keys: (n) keys; a key repeated in the batch keeps its last vector.
    ///   - vectors: (n × vecSize) floats, row i for `keys[i]`.
    /// - Returns: how many keys were new, and how many replaced an existing vector.
    @discardableResult
    func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                parallelism: Int) throws(StoreError) -> InsertCounts

    /// Inserts those of `keys` that the table does not hold, leaving the
    /// others as they are: how a tier that was unreachable while a model
    /// loaded catches up (`StoreCatchUp`) without overwriting a vector an
    /// online update wrote since.
    /// - Returns: `inserted`: the keys that were absent and are stored now.
    /// The default looks the keys up and inserts the misses, so an update
    /// between the two can be overwritten; a store that can insert only if
    /// absent in one step (Redis: `HSETNX`) does so.
    @discardableResult
    func insertAbsent(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                      parallelism: Int) throws(StoreError) -> InsertCounts

    /// Erases keys of `member`; keys not present are ignored.
    /// - Returns: the number of keys erased.
    @discardableResult
    func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int
}

extension EmbeddingStoreTable {
    package func insertAbsent(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                             parallelism: Int) throws(StoreError) -> InsertCounts {
        try checkInsert(member: member, keys: keys.count, floats: vectors.count)
        guard let keyBase = keys.baseAddress, let vectorBase = vectors.baseAddress, !keys.isEmpty else { return InsertCounts() }
        var missed = [Int](repeating: 0, count: keys.count)
        var scratch = [Float](repeating: 0, count: keys.count * vecSize)
        let misses = scratch.withUnsafeMutableBufferPointer { output in
            missed.withUnsafeMutableBufferPointer { missed in
                let run = [LookupRun(member: member, keys: keyBase, count: keys.count, output: output.baseAddress!)]
                return run.withUnsafeBufferPointer { lookup($0, defaults: nil, missed: missed.baseAddress, parallelism: parallelism) }
            }
        }
        guard misses > 0 else { return InsertCounts() }
        var absentKeys = [Int64](repeating: 0, count: misses)
        var absentVectors = [Float](repeating: 0, count: misses * vecSize)
        for (j, i) in missed[0..<misses].enumerated() {
            absentKeys[j] = keyBase[i]
            for d in 0..<vecSize { absentVectors[j * vecSize + d] = vectorBase[i * vecSize + d] }
        }
        // `withUnsafeBufferPointer` rethrows untyped errors, so the typed error travels inside a `Result`.
        return try absentKeys.withUnsafeBufferPointer { k in
            absentVectors.withUnsafeBufferPointer { v in
                Result { () throws(StoreError) -> InsertCounts in try insert(member: member, keys: k, vectors: v, parallelism: parallelism) }
            }
        }.get()
    }

    /// The checks every backend's `insert` makes of its arguments: `member`
    /// is one of the table's, and there are `vecSize` floats per key.
    /// - Throws: `StoreError.noSuchMember` or `.vectorCount`, naming the table.
    package func checkInsert(member: Int, keys: Int, floats: Int) throws(StoreError) {
        guard member >= 0 && member < memberCount else {
            throw .noSuchMember(table: tag, member: member, members: memberCount)
        }
        guard floats == keys * vecSize else {
            throw .vectorCount(table: tag, keys: keys, vecSize: vecSize, floats: floats)
        }
    }
}

/// What an insert did.
public struct InsertCounts: Sendable, Equatable {
    /// Keys that were not in the table.
    public var inserted: Int
    /// Keys whose vector was replaced (including repeats within the batch).
    public var replaced: Int
    /// Keys evicted to stay under the overflow margin.
    public var evicted: Int

    /// Creates counts.
    public init(inserted: Int = 0, replaced: Int = 0, evicted: Int = 0) {
        self.inserted = inserted
        self.replaced = replaced
        self.evicted = evicted
    }

    /// The sum of two counts.
    public static func + (a: InsertCounts, b: InsertCounts) -> InsertCounts {
        InsertCounts(inserted: a.inserted + b.inserted, replaced: a.replaced + b.replaced, evicted: a.evicted + b.evicted)
    }
}
