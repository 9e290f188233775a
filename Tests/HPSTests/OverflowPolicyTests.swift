import HPSStoreTestSupport
import Testing

@testable import HPS

struct OverflowPolicyTests {
    /// A one-member table of vec size 2 in a store with the given overflow rules.
    private func table(partitions: Int, margin: UInt64, policy: OverflowPolicy) throws -> HashMapTable {
        let store = HashMapStore(partitions: partitions, overflowMargin: margin, overflowPolicy: policy,
                                 overflowResolutionTarget: 0.8)
        return try store.hashMapTable("hps_et.m.overflow", vecSize: 2, members: 1, expectedKeys: 0)
    }

    /// Keys lo..<hi with vectors (key, −key).
    private func rows(_ range: Range<Int64>) -> ([Int64], [Float]) {
        (Array(range), range.flatMap { [Float($0), -Float($0)] })
    }

    @Test("every partition stays within the margin and the evictions are counted", arguments: OverflowPolicy.allCases)
    func partitionsStayWithinMargin(policy: OverflowPolicy) throws {
        let table = try table(partitions: 4, margin: 1000, policy: policy)
        var total = InsertCounts()
        for start in stride(from: Int64(0), to: 20_000, by: 2_500) {
            let (keys, vectors) = rows(start..<(start + 2_500))
            total = total + (try insert(table, keys: keys, vectors: vectors))
            // Lookups in between give the access-tracking policies something to see.
            _ = lookup(table, keys: Array(keys[0..<100]))
        }
        for (p, partition) in table.partitions.enumerated() {
            #expect(partition.count <= 1000, "partition \(p) holds \(partition.count)")
        }
        #expect(total.inserted == 20_000)
        #expect(total.evicted > 0)
        #expect(total.inserted - total.evicted == table.count)

        // What is left still answers with its own vectors.
        let (keys, vectors) = rows(0..<20_000)
        let (out, missed) = lookup(table, keys: keys, defaults: [.infinity])
        #expect(keys.count - missed.count == table.count)
        let missedSet = Set(missed)
        for i in keys.indices where !missedSet.contains(i) {
            if out[2 * i] != vectors[2 * i] || out[2 * i + 1] != vectors[2 * i + 1] {
                Issue.record("key \(keys[i]) returned \(out[2 * i]), \(out[2 * i + 1])")
                break
            }
        }
    }

    @Test("replacing the vectors of a full partition evicts nothing", arguments: OverflowPolicy.allCases)
    func replacingEvictsNothing(policy: OverflowPolicy) throws {
        let table = try table(partitions: 1, margin: 1000, policy: policy)
        let (keys, vectors) = rows(0..<1000)
        #expect(try insert(table, keys: keys, vectors: vectors).evicted == 0)
        let counts = try insert(table, keys: keys, vectors: vectors.map { $0 * 2 })
        #expect(counts == InsertCounts(inserted: 0, replaced: 1000, evicted: 0))
        #expect(table.count == 1000)
        let (out, missed) = lookup(table, keys: keys, defaults: [.infinity])
        #expect(missed.isEmpty)
        #expect(out == vectors.map { $0 * 2 })
    }

    @Test("evict_random evicts the same keys in every run")
    func randomEvictionRepeats() throws {
        func survivors() throws -> [Int64] {
            let table = try table(partitions: 2, margin: 500, policy: .evictRandom)
            let (keys, vectors) = rows(0..<3000)
            _ = try insert(table, keys: keys, vectors: vectors)
            let (_, missed) = lookup(table, keys: keys, defaults: [0])
            let gone = Set(missed)
            return keys.indices.filter { !gone.contains($0) }.map { keys[$0] }
        }
        let first = try survivors()
        #expect(!first.isEmpty)
        #expect(try survivors() == first)
    }

    @Test("evict_oldest keeps keys looked up recently")
    func oldestKeepsRecent() throws {
        let table = try table(partitions: 1, margin: 1000, policy: .evictOldest)
        let (keys, vectors) = rows(0..<1000)
        #expect(try insert(table, keys: keys, vectors: vectors).evicted == 0)
        // Keys 100..<1000 are used often but early; keys 0..<100 once, last.
        for _ in 0..<5 { _ = lookup(table, keys: Array(keys[100...])) }
        _ = lookup(table, keys: Array(keys[0..<100]))

        let (more, moreVectors) = rows(5000..<5100)
        let counts = try insert(table, keys: more, vectors: moreVectors)
        #expect(counts.evicted == 200)
        #expect(table.count == 900)
        let (out, missed) = lookup(table, keys: Array(keys[0..<100]))
        #expect(missed.isEmpty, "recently used keys were evicted: \(missed.count)")
        #expect(out == Array(vectors[0..<200]))
        #expect(lookup(table, keys: more).missed.isEmpty)
    }

    @Test("evict_least_used keeps keys looked up often")
    func leastUsedKeepsFrequent() throws {
        let table = try table(partitions: 1, margin: 1000, policy: .evictLeastUsed)
        let (keys, vectors) = rows(0..<1000)
        #expect(try insert(table, keys: keys, vectors: vectors).evicted == 0)
        // Keys 0..<100 are used often but early; keys 100..<1000 once, last.
        for _ in 0..<5 { _ = lookup(table, keys: Array(keys[0..<100])) }
        _ = lookup(table, keys: Array(keys[100...]))

        let (more, moreVectors) = rows(5000..<5100)
        let counts = try insert(table, keys: more, vectors: moreVectors)
        #expect(counts.evicted == 200)
        #expect(table.count == 900)
        let (out, missed) = lookup(table, keys: Array(keys[0..<100]))
        #expect(missed.isEmpty, "frequently used keys were evicted: \(missed.count)")
        #expect(out == Array(vectors[0..<200]))
    }

    @Test("evict_random brings a full partition down to the resolution target")
    func randomResolutionTarget() throws {
        let table = try table(partitions: 1, margin: 500, policy: .evictRandom)
        let (keys, vectors) = rows(0..<500)
        try insert(table, keys: keys, vectors: vectors)
        #expect(table.count == 500)
        let counts = try insert(table, keys: [10_000], vectors: [1, 2])
        // 500 → 400 (0.8 × 500), then the new key.
        #expect(counts == InsertCounts(inserted: 1, replaced: 0, evicted: 100))
        #expect(table.count == 401)
        #expect(lookup(table, keys: [10_000]).vectors == [1, 2])
    }

    @Test("loading a folder larger than the margin reports evictions as a warning")
    func loadWarnsAboutEvictions() throws {
        let directory = try TemporaryDirectory(prefix: "hps-overflow")
        defer { directory.remove() }
        try RandomTable(count: 3000, vecSize: 2, seed: 1).write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(
            tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2)],
            extra: [("volatile_db", .object(JSONObject([
                ("type", .string("hash_map")), ("num_partitions", .integer(2)),
                ("overflow_margin", .integer(1000)), ("overflow_policy", .string("evict_random")),
            ])))])
        let server = try TestConfiguration.server(json, in: directory.path)
        let report = try #require(server.loadReports.first)
        #expect(report.evicted > 0)
        #expect(report.loaded <= 2000)
        #expect(server.warnings.contains { $0.contains("\(report.evicted) key(s) were evicted") }, "\(server.warnings)")
    }
}
