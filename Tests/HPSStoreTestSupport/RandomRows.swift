package import HPS

// Shared by the test targets of the store tiers (mapped, RocksDB).

/// Distinct random keys and vectors, to write and to check lookups against.
public struct RandomRows: Sendable {
    public var keys: [Int64]
    public var vectors: [Float]
    public var vecSize: Int

    public init(count: Int, vecSize: Int, seed: UInt64, keyRange: ClosedRange<Int64>? = nil) {
        var random = SplitMix64(seed: seed)
        var seen = Set<Int64>()
        var keys: [Int64] = []
        while keys.count < count {
            let key: Int64
            if let keyRange {
                key = keyRange.lowerBound + Int64(random.next() % UInt64(keyRange.upperBound - keyRange.lowerBound + 1))
            } else {
                key = Int64(bitPattern: random.next())
            }
            if seen.insert(key).inserted { keys.append(key) }
        }
        self.keys = keys
        self.vectors = (0..<(count * vecSize)).map { _ in random.nextFloat(-1, 1) }
        self.vecSize = vecSize
    }

    package func row(_ i: Int) -> [Float] { Array(vectors[(i * vecSize)..<((i + 1) * vecSize)]) }

    public var reference: [Int64: [Float]] {
        var result: [Int64: [Float]] = [:]
        for (i, key) in keys.enumerated() { result[key] = row(i) }
        return result
    }
}

/// Looks up `keys` of `member` into an output poisoned with NaN, so that an
/// element the lookup does not write fails every comparison.
/// - Returns: (n × vecSize) floats and the flat indices of the misses.
package func lookup(_ table: any EmbeddingStoreTable, member: Int = 0, keys: [Int64], defaults: [Float]? = nil,
                   parallelism: Int = 1) -> (vectors: [Float], missed: [Int]) {
    let memberDefaults = defaults ?? [Float](repeating: 0, count: table.memberCount)
    var output = [Float](repeating: .nan, count: keys.count * table.vecSize)
    var missed = [Int](repeating: -1, count: max(1, keys.count))
    let misses = keys.withUnsafeBufferPointer { k in
        output.withUnsafeMutableBufferPointer { out in
            missed.withUnsafeMutableBufferPointer { m in
                memberDefaults.withUnsafeBufferPointer { d in
                    let runs = [LookupRun(member: member, keys: k.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                          count: keys.count, output: out.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!)]
                    return runs.withUnsafeBufferPointer {
                        table.lookup($0, defaults: d, missed: m.baseAddress, parallelism: parallelism)
                    }
                }
            }
        }
    }
    return (output, Array(missed[0..<misses]))
}

/// Inserts rows into `member` of a table.
@discardableResult
package func insert(_ table: any EmbeddingStoreTable, member: Int = 0, keys: [Int64], vectors: [Float],
                   parallelism: Int = 1) throws -> InsertCounts {
    try keys.withUnsafeBufferPointer { k in
        try vectors.withUnsafeBufferPointer { v in try table.insert(member: member, keys: k, vectors: v, parallelism: parallelism) }
    }
}

/// Whether two float arrays hold the same bits in every element.
package func bitwiseEqual(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// Erases keys of `member` from a table.
@discardableResult
package func erase(_ table: any EmbeddingStoreTable, member: Int = 0, keys: [Int64]) -> Int {
    keys.withUnsafeBufferPointer { table.erase(member: member, keys: $0) }
}

/// What a tier storing `vectors` as `storage` should read back: the rows
/// through the hash map tier in the same storage (the checked CPU path).
package func storedRows(keys: [Int64], vectors: [Float], vecSize: Int, storage: VectorStorage) throws -> [Int64: [Float]] {
    let store = HashMapStore(partitions: 1)
    let table = try store.createTable("hps_et.reference", vecSize: vecSize, members: 1, expectedKeys: keys.count, storage: storage)
    _ = try insert(table, keys: keys, vectors: vectors)
    let (out, _) = lookup(table, keys: keys)
    var result: [Int64: [Float]] = [:]
    for (i, key) in keys.enumerated() { result[key] = Array(out[(i * vecSize)..<((i + 1) * vecSize)]) }
    return result
}
