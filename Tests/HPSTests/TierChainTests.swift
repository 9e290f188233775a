import HPSStoreTestSupport
import Testing

@testable import HPS

/// The lookup path through several tiers: keys the top tier misses are asked
/// of the next, what no tier holds gets the default, counts are kept per
/// tier, and `cache_missed_embeddings` copies keys found below into the top.
struct TierChainTests {
    /// A two-table model (vec 4 and vec 4, fused) over two hash-map tiers:
    /// the top holds the even keys of each table, the bottom holds all keys.
    private func chain(cacheMissed: Bool) throws -> (LookupSession, top: HashMapTable, rows: [[Int64: [Float]]]) {
        var model = ModelConfiguration(name: "m", sparseFiles: ["a", "b"], vecSizes: [4, 4], maxQueryKeysPerSample: [100, 100])
        model.defaultValues = [7, -7]
        let plan = FusionPlan(model: model, fuse: true)
        let top = try HashMapStore(partitions: 2).hashMapTable("hps_et.m.fused_embedding0", vecSize: 4, members: 2, expectedKeys: 0)
        let bottom = try HashMapStore(partitions: 3).hashMapTable("hps_et.m.fused_embedding0", vecSize: 4, members: 2, expectedKeys: 0)
        var random = SplitMix64(seed: 3)
        var rows: [[Int64: [Float]]] = [[:], [:]]
        for member in 0..<2 {
            let keys = (0..<200).map { Int64($0) }  // the same keys in both tables, other vectors
            let vectors = (0..<(200 * 4)).map { _ in random.nextFloat(-1, 1) }
            for (i, key) in keys.enumerated() { rows[member][key] = Array(vectors[(i * 4)..<(i * 4 + 4)]) }
            _ = try insert(bottom, member: member, keys: keys, vectors: vectors)
            let even = keys.filter { $0 % 2 == 0 }
            _ = try insert(top, member: member, keys: even, vectors: even.flatMap { rows[member][$0]! })
        }
        let session = LookupSession(model: model, plan: plan, keyType: .int64, tiers: [[top, bottom]], parallelism: 1,
                                    cacheMissedEmbeddings: cacheMissed)
        return (session, top, rows)
    }

    @Test("keys missing from the top tier come from the next, keys in no tier get the default, counted per tier")
    func chainAnswersEveryKey() throws {
        let (session, _, rows) = try chain(cacheMissed: false)
        let keys: [Int64] = [0, 1, 2, 3, 500, 198, 199]
        let result = try session.lookup(tables: [(0, keys), (1, keys)])
        for (table, vectors) in result.enumerated() {
            for (i, key) in keys.enumerated() {
                let want = rows[table][key] ?? [Float](repeating: table == 0 ? 7 : -7, count: 4)
                #expect(Array(vectors[(i * 4)..<(i * 4 + 4)]) == want, "table \(table) key \(key)")
            }
        }
        let totals = session.statistics.totals
        #expect(totals.keys == 14)
        #expect(totals.tierHits == [6, 6])  // 0, 2, 198 from the top; 1, 3, 199 from below; per table
        #expect(totals.defaults == 2)
    }

    @Test("with cache_missed_embeddings, keys found below are copied into the top tier")
    func cacheMissedCopiesUp() throws {
        let (session, top, rows) = try chain(cacheMissed: true)
        #expect(top.count == 200)
        _ = try session.lookup(tables: [(1, [1, 3, 500])])
        #expect(top.count == 202)
        let second = try session.lookup(tables: [(1, [1, 3])])
        #expect(second[0] == rows[1][1]! + rows[1][3]!)
        #expect(session.statistics.totals.tierHits == [2, 2])
    }

    @Test("without cache_missed_embeddings, the top tier is left as it was")
    func noCopyByDefault() throws {
        let (session, top, _) = try chain(cacheMissed: false)
        _ = try session.lookup(tables: [(0, [1, 3, 5])])
        #expect(top.count == 200)
    }

    @Test("as one table, the chain lists the keys no tier holds, ascending, and fills only those with the default")
    func chainAsTable() throws {
        let (session, _, rows) = try chain(cacheMissed: false)
        let chain = try #require(session.tierChain(group: 0))
        #expect(chain.tiers.count == 2)
        // Member 1: a top-tier key, a lower-tier key, an absent key, another lower-tier key.
        let keys: [Int64] = [4, 5, 900, 7]
        let (vectors, missed) = lookup(chain, member: 1, keys: keys, defaults: [7, -7])
        #expect(missed == [2])
        #expect(Array(vectors[0..<4]) == rows[1][4]!)
        #expect(Array(vectors[4..<8]) == rows[1][5]!)
        #expect(Array(vectors[8..<12]) == [-7, -7, -7, -7])
        #expect(Array(vectors[12..<16]) == rows[1][7]!)
    }
}
