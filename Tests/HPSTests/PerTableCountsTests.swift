import HPSStoreTestSupport
import Testing

@testable import HPS

/// A session counts, for each table, the keys looked up, the keys each tier
/// answered and the keys answered with the default value; a fused lookup is
/// split by its member tables' keys.
struct PerTableCountsTests {
    /// Two tables of vec 4, fused or not, over one or two hash-map tiers.
    /// Table t holds keys 0..<100 in the bottom tier; the top tier holds the
    /// even ones (with one tier, only the top, so odd keys are missing).
    private func session(fuse: Bool, tiers: Int) throws -> LookupSession {
        var model = ModelConfiguration(name: "m", sparseFiles: ["a", "b"], vecSizes: [4, 4], maxQueryKeysPerSample: [100, 100])
        model.defaultValues = [1, 2]
        let plan = FusionPlan(model: model, fuse: fuse)
        var groupTiers: [[any EmbeddingStoreTable]] = []
        for group in plan.groups {
            let tag = FusionPlan.tag(model: "m", group: group.name)
            let top = try HashMapStore(partitions: 2).hashMapTable(tag, vecSize: 4, members: group.tables.count, expectedKeys: 0)
            let bottom = try HashMapStore(partitions: 2).hashMapTable(tag, vecSize: 4, members: group.tables.count, expectedKeys: 0)
            for member in group.tables.indices {
                let all = (0..<100).map { Int64($0) }
                let even = all.filter { $0 % 2 == 0 }
                _ = try insert(top, member: member, keys: even, vectors: [Float](repeating: 0.5, count: even.count * 4))
                _ = try insert(bottom, member: member, keys: all, vectors: [Float](repeating: 0.5, count: all.count * 4))
            }
            groupTiers.append(tiers == 1 ? [top] : [top, bottom])
        }
        return LookupSession(model: model, plan: plan, keyType: .int64, tiers: groupTiers, parallelism: 2)
    }

    // Table 0: 0, 2 even (top); 1, 3, 5 odd (bottom); 500, 700 in no tier.
    // Table 1: 4 even; 7 odd; 900 in no tier.
    private let table0: [Int64] = [0, 1, 2, 500, 3, 700, 5]
    private let table1: [Int64] = [900, 4, 7]

    @Test("over two tiers, each table's keys are counted per tier and default", arguments: [false, true])
    func twoTiers(fuse: Bool) throws {
        let session = try session(fuse: fuse, tiers: 2)
        let counts = try [(0, table0), (1, table1)].withUnsafeRuns(vecSize: 4) { try session.lookup($0) }
        #expect(counts.tables == [LookupCounts.Table(keys: 7, tierHits: [2, 3], defaults: 2),
                                  LookupCounts.Table(keys: 3, tierHits: [1, 1], defaults: 1)])
        #expect(counts.keys == 10 && counts.tierHits == [3, 4] && counts.defaults == 3)
    }

    @Test("over one tier, each table's misses are its defaults", arguments: [false, true])
    func oneTier(fuse: Bool) throws {
        let session = try session(fuse: fuse, tiers: 1)
        let counts = try [(0, table0), (1, table1)].withUnsafeRuns(vecSize: 4) { try session.lookup($0) }
        #expect(counts.tables == [LookupCounts.Table(keys: 7, tierHits: [2], defaults: 5),
                                  LookupCounts.Table(keys: 3, tierHits: [1], defaults: 2)])
        #expect(counts.keys == 10 && counts.tierHits == [3] && counts.defaults == 7)
    }

    @Test("the statistics add up every lookup per table, also a table asked twice in one lookup", arguments: [false, true])
    func statisticsAccumulate(fuse: Bool) throws {
        let session = try session(fuse: fuse, tiers: 2)
        _ = try session.lookup(tables: [(1, table1), (0, table0), (1, [8, 9, 1000])])
        _ = try session.lookup(tables: [(0, [11])])
        let totals = session.statistics.totals
        #expect(totals.tables == [LookupCounts.Table(keys: 8, tierHits: [2, 4], defaults: 2),
                                  LookupCounts.Table(keys: 6, tierHits: [2, 2], defaults: 2)])
        #expect(totals.tables[0].hitRatio(tier: 1) == 0.5)
        #expect(totals.keys == 14 && totals.tierHits == [4, 6] && totals.defaults == 4)
    }
}

extension Array where Element == (Int, [Int64]) {
    /// Runs over (table, keys) pairs, with output room of `vecSize` floats a key.
    fileprivate func withUnsafeRuns<R>(vecSize: Int, _ body: (UnsafeBufferPointer<LookupRun>) throws -> R) rethrows -> R {
        let keys = flatMap(\.1)
        var output = [Float](repeating: 0, count: keys.count * vecSize)
        return try keys.withUnsafeBufferPointer { keys in
            try output.withUnsafeMutableBufferPointer { output in
                var runs: [LookupRun] = []
                var offset = 0
                for (table, tableKeys) in self {
                    runs.append(LookupRun(member: table, keys: keys.baseAddress! + offset, count: tableKeys.count,
                                          output: output.baseAddress! + offset * vecSize))
                    offset += tableKeys.count
                }
                return try runs.withUnsafeBufferPointer(body)
            }
        }
    }
}
