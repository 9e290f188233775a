#if RocksDB
import CRocksDB
package import HPS
import Synchronization

/// One table of a `RocksDBStore`: a column family (see the store for the key
/// and value layout).
///
/// `lookup` reads with `rocksdb_multi_get_cf`, `max_batch_size` keys per call,
/// in order, so the missed indices come out ascending. A value is a row as
/// the table's `vector_storage` stores it (`VectorCodec`; `vecSize` floats for
/// fp32); a stored value of another length (it cannot be written by this
/// store) counts as a miss.
///
/// `count` is exact: a counter in the default column family, changed in the
/// same atomic write batch as the keys. To keep it exact, `insert` and `erase`
/// first read which keys exist (one MultiGet per batch) and are serialized per
/// table.
///
/// Thread safety: lookups run concurrently with everything; inserts and
/// erases of one table take turns.
package final class RocksDBTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag, also its column family's name.
    package let tag: String
    /// Floats per vector.
    package let vecSize: Int
    /// How rows are stored (`vector_storage`).
    package let storage: VectorStorage
    /// The number of member tables.
    package let memberCount: Int
    let context: RocksContext
    let family: RocksColumnFamily
    private let keyCount: Atomic<Int>
    private let writeLock = ReadWriteLock()

    /// Bytes of an encoded key: a UInt32 member and a UInt64 key, big-endian.
    static let keyBytes = 12

    init(context: RocksContext, family: RocksColumnFamily, tag: String, vecSize: Int, storage: VectorStorage = .fp32,
         members: Int, count: Int) {
        self.context = context
        self.family = family
        self.tag = tag
        self.vecSize = vecSize
        self.storage = storage
        self.memberCount = members
        self.keyCount = Atomic(count)
    }

    /// The number of keys held, all members together (exact).
    package var count: Int { keyCount.load(ordering: .relaxed) }

    @inline(__always)
    static func encode(_ key: Int64, member: Int, into buffer: UnsafeMutableRawPointer) {
        buffer.storeBytes(of: UInt32(truncatingIfNeeded: member).bigEndian, as: UInt32.self)
        (buffer + 4).storeBytes(of: UInt64(bitPattern: key).bigEndian, as: UInt64.self)
    }

    /// Scratch for one MultiGet of up to `capacity` keys, allocated once per call.
    struct MultiGetScratch {
        let capacity: Int
        let keys: UnsafeMutableRawPointer
        let keyPointers: UnsafeMutablePointer<UnsafePointer<CChar>?>
        let keySizes: UnsafeMutablePointer<Int>
        let families: UnsafeMutablePointer<OpaquePointer?>
        let values: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
        let valueSizes: UnsafeMutablePointer<Int>
        let errors: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

        init(capacity: Int, family: OpaquePointer) {
            self.capacity = capacity
            keys = .allocate(byteCount: capacity * RocksDBTable.keyBytes, alignment: 8)
            keyPointers = .allocate(capacity: capacity)
            keySizes = .allocate(capacity: capacity)
            families = .allocate(capacity: capacity)
            values = .allocate(capacity: capacity)
            valueSizes = .allocate(capacity: capacity)
            errors = .allocate(capacity: capacity)
            for i in 0..<capacity {
                keyPointers[i] = UnsafePointer((keys + i * RocksDBTable.keyBytes).assumingMemoryBound(to: CChar.self))
                keySizes[i] = RocksDBTable.keyBytes
            }
            families.initialize(repeating: family, count: capacity)
        }

        func deallocate() {
            keys.deallocate(); keyPointers.deallocate(); keySizes.deallocate(); families.deallocate()
            values.deallocate(); valueSizes.deallocate(); errors.deallocate()
        }

        /// Reads the first `n` encoded keys of table `tag`; afterwards each
        /// value is either present (to be freed by the caller with
        /// `rocksdb_free`) or nil.
        func multiGet(_ context: RocksContext, count n: Int, tag: String) {
            rocksdb_multi_get_cf(context.database.handle, context.readOptions.handle, families, n,
                                 keyPointers, keySizes, values, valueSizes, errors)
            var failed = 0
            var first: String? = nil
            for i in 0..<n where errors[i] != nil {
                // A failed read of one key (a corrupt block) is answered as a miss, and recorded.
                if first == nil { first = String(cString: errors[i]!) }
                failed += 1
                rocksdb_free(errors[i])
                errors[i] = nil
                if let value = values[i] { rocksdb_free(value) }
                values[i] = nil
            }
            if let first {
                context.faults.record(
                    "table \(tag): RocksDB could not read keys at \(context.path) (\(first)); lookups answer them from the tiers below",
                    count: failed)
            }
        }
    }

    // MARK: Lookup

    /// Keys below which a lookup is not split across threads.
    static let parallelMinimum = 8192

    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        LookupSplit.run(runs, parallelism: parallelism, minimumPerPiece: Self.parallelMinimum, missed: missed) {
            run, offset, count, flatStart, missed in
            lookupRange(runs, run: run, offset: offset, count: count, flatStart: flatStart, defaults: defaults, missed: missed)
        }
    }

    /// Looks up `count` keys starting at key `offset` of run `run` (flat index
    /// `flatStart`), `max_batch_size` keys per MultiGet, writing misses at `missed`.
    private func lookupRange(_ runs: UnsafeBufferPointer<LookupRun>, run firstRun: Int, offset firstOffset: Int, count: Int,
                             flatStart: Int, defaults: UnsafeBufferPointer<Float>?, missed: UnsafeMutablePointer<Int>?) -> Int {
        let chunk = min(context.maxBatchSize, count)
        let scratch = MultiGetScratch(capacity: chunk, family: family.handle)
        defer { scratch.deallocate() }
        let outputs = UnsafeMutablePointer<UnsafeMutablePointer<Float>>.allocate(capacity: chunk)
        let members = UnsafeMutablePointer<Int>.allocate(capacity: chunk)
        defer { outputs.deallocate(); members.deallocate() }
        let codec = VectorCodec(storage: storage, dim: vecSize)
        let bytes = codec.rowBytes
        var misses = 0
        var filled = 0, flatBase = flatStart

        func flush() {
            scratch.multiGet(context, count: filled, tag: tag)
            for i in 0..<filled {
                if let value = scratch.values[i], scratch.valueSizes[i] == bytes {
                    // RocksDB's values are malloc'ed: aligned for the decoder's loads.
                    codec.decode(UnsafeRawPointer(value), into: outputs[i])
                    rocksdb_free(value)
                } else {
                    if let value = scratch.values[i] { rocksdb_free(value) }
                    if let defaults, members[i] >= 0 && members[i] < defaults.count {
                        outputs[i].update(repeating: defaults[members[i]], count: vecSize)
                    }
                    missed?[misses] = flatBase + i
                    misses += 1
                }
            }
            flatBase += filled
            filled = 0
        }

        var run = firstRun, offset = firstOffset, remaining = count
        while remaining > 0 {
            let current = runs[run]
            let n = min(current.count - offset, remaining)
            for j in offset..<(offset + n) {
                Self.encode(current.keys[j], member: current.member, into: scratch.keys + filled * Self.keyBytes)
                outputs[filled] = current.output + j * vecSize
                members[filled] = current.member
                filled += 1
                if filled == chunk { flush() }
            }
            remaining -= n
            run += 1
            offset = 0
        }
        if filled > 0 { flush() }
        return misses
    }

    // MARK: Compaction

    /// Writes the table's memtable to table files and compacts its whole key
    /// range into the bottom level, so that a reopened database reads every
    /// key from one sorted run (benchmarks use it for a layout that does not
    /// depend on when background compactions ran). Blocks until done.
    /// - Throws: `RocksDBError.operation` if the flush fails.
    package func compact() throws(RocksDBError) {
        let options = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(options) }
        rocksdb_flushoptions_set_wait(options, 1)
        let (_, message) = withErrorPointer { rocksdb_flush_cf(context.database.handle, options, family.handle, $0) }
        if let message { throw RocksContext.classify(path: context.path, operation: "flush table \(tag)", message: message) }
        rocksdb_compact_range_cf(context.database.handle, family.handle, nil, 0, nil, 0)
    }

    // MARK: Changes

    package func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        try checkInsert(member: member, keys: keys.count, floats: vectors.count)
        guard context.readOnly == false else {
            throw .backend(kind: "rocks_db", table: tag, operation: nil,
                           cause: RocksDBError.readOnly(path: context.path, table: tag, operation: "insert into"))
        }
        guard let vectorBase = vectors.baseAddress, !keys.isEmpty else { return InsertCounts() }
        // A quantized table's rows are encoded first, so that a row it cannot hold fails the insert before anything is written.
        let codec = VectorCodec(storage: storage, dim: vecSize)
        let rowBytes = codec.rowBytes
        let encoded = storage == .fp32 ? nil : try EncodedRows(vectorBase, count: keys.count, codec: codec, table: tag) { keys[$0] }
        let source = encoded.map { UnsafeRawPointer($0.base) } ?? UnsafeRawPointer(vectorBase)
        defer { withExtendedLifetime(encoded) {} }
        return try change(member: member, keys: keys) { (batch, i, existed, keyPointer) in
            rocksdb_writebatch_put_cf(batch.handle, family.handle, keyPointer, Self.keyBytes,
                                      (source + i * rowBytes).assumingMemoryBound(to: CChar.self), rowBytes)
            return existed ? 0 : 1
        } counts: { changed, total in
            InsertCounts(inserted: changed, replaced: total - changed)
        }
    }

    package func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int {
        guard !context.readOnly, member >= 0 && member < memberCount, !keys.isEmpty else { return 0 }
        // The protocol's erase cannot throw; a failed write erases nothing.
        let erased = try? change(member: member, keys: keys) { (batch, _, existed, keyPointer) in
            guard existed else { return 0 }
            rocksdb_writebatch_delete_cf(batch.handle, family.handle, keyPointer, Self.keyBytes)
            return -1
        } counts: { changed, _ in changed }
        return erased ?? 0
    }

    /// Applies a change to `keys` in write batches of `max_batch_size`, each
    /// with the updated key count. `apply(batch, i, existed, key)` adds key i's
    /// change and returns its change to the count, where `existed` says
    /// whether the key was held before (counting earlier keys of this call).
    private func change<Result>(member: Int, keys: UnsafeBufferPointer<Int64>,
                                apply: (RocksWriteBatch, Int, Bool, UnsafePointer<CChar>) -> Int,
                                counts: (Int, Int) -> Result) throws(StoreError) -> Result {
        let chunk = min(context.maxBatchSize, keys.count)
        let scratch = MultiGetScratch(capacity: chunk, family: family.handle)
        defer { scratch.deallocate() }
        let countKey = RocksDBStore.countKey(tag)
        return try writeLock.withWriteLock { () throws(StoreError) -> Result in
            // Keys of this chunk already changed by it, since its MultiGet saw the
            // state before; earlier chunks are written before the next MultiGet.
            var changedHere: [Int64: Bool] = [:]
            changedHere.reserveCapacity(chunk)
            var delta = 0
            var start = 0
            while start < keys.count {
                let n = min(chunk, keys.count - start)
                for i in 0..<n {
                    Self.encode(keys[start + i], member: member, into: scratch.keys + i * Self.keyBytes)
                }
                scratch.multiGet(context, count: n, tag: tag)
                let batch = RocksWriteBatch()
                var chunkDelta = 0
                changedHere.removeAll(keepingCapacity: true)
                for i in 0..<n {
                    var existed = scratch.values[i] != nil
                    if let value = scratch.values[i] { rocksdb_free(value) }
                    let key = keys[start + i]
                    if let now = changedHere[key] { existed = now }
                    let d = apply(batch, start + i, existed, scratch.keyPointers[i]!)
                    chunkDelta += d
                    changedHere[key] = d > 0 ? true : (d < 0 ? false : existed)
                }
                var newCount = Int64(keyCount.load(ordering: .relaxed) + chunkDelta).littleEndian
                withUnsafeBytes(of: &newCount) { raw in
                    rocksdb_writebatch_put_cf(batch.handle, context.defaultFamily.handle, countKey, countKey.utf8.count,
                                              raw.baseAddress!.assumingMemoryBound(to: CChar.self), 8)
                }
                do {
                    try context.write(batch, operation: "write \(n) keys of table \(tag)")
                } catch {
                    throw .backend(kind: "rocks_db", table: tag, operation: nil, cause: error)
                }
                keyCount.add(chunkDelta, ordering: .relaxed)
                delta += chunkDelta
                start += n
            }
            return counts(abs(delta), keys.count)
        }
    }
}
#endif
