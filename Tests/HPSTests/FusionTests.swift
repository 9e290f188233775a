import HPSStoreTestSupport
import Testing

@testable import HPS

struct FusionTests {
    /// A model of tables with the given vec sizes; table i allows 10 × (i + 1) keys per sample.
    private func model(vecSizes: [Int]) -> ModelConfiguration {
        var model = ModelConfiguration(name: "m", sparseFiles: vecSizes.indices.map { "t\($0)" }, vecSizes: vecSizes,
                                       maxQueryKeysPerSample: vecSizes.indices.map { 10 * ($0 + 1) })
        model.tableNames = vecSizes.indices.map { "t\($0)" }
        model.maxBatchSize = 2
        return model
    }

    @Test("fused groups are named fused_embedding<i> in ascending vec size")
    func fusedGroups() {
        let plan = FusionPlan(model: model(vecSizes: [16, 8, 16, 4]), fuse: true)
        #expect(plan.fused)
        #expect(plan.groups.map(\.name) == ["fused_embedding0", "fused_embedding1", "fused_embedding2"])
        #expect(plan.groups.map(\.vecSize) == [4, 8, 16])
        #expect(plan.groups.map(\.tables) == [[3], [1], [0, 2]])
        // max_batch_size 2 × (10, 20, 30, 40) keys per sample.
        #expect(plan.groups.map(\.maxKeys) == [80, 40, 20 + 60])
        #expect(plan.groupOfTable == [2, 1, 2, 0])
        #expect(plan.memberOfTable == [0, 0, 1, 0])
        #expect(FusionPlan.tag(model: "m", group: plan.groups[0].name) == "hps_et.m.fused_embedding0")
    }

    @Test("an unfused plan has one group per table, named after it")
    func unfusedGroups() {
        let plan = FusionPlan(model: model(vecSizes: [16, 8, 16, 4]), fuse: false)
        #expect(!plan.fused)
        #expect(plan.groups.map(\.name) == ["t0", "t1", "t2", "t3"])
        #expect(plan.groups.map(\.vecSize) == [16, 8, 16, 4])
        #expect(plan.groups.map(\.tables) == [[0], [1], [2], [3]])
        #expect(plan.groups.map(\.maxKeys) == [20, 40, 60, 80])
        #expect(plan.groupOfTable == [0, 1, 2, 3])
        #expect(plan.memberOfTable == [0, 0, 0, 0])
    }

    @Test("a server makes one store table per fusion group")
    func serverTablesFollowPlan() throws {
        let directory = try TemporaryDirectory(prefix: "hps-fusion")
        defer { directory.remove() }
        let vecSizes = [16, 8, 16, 4]
        for (i, v) in vecSizes.enumerated() {
            try RandomTable(count: 50, vecSize: v, seed: UInt64(i)).write(to: joinPath(directory.path, "t\(i)"))
        }
        let specs = vecSizes.enumerated().map { TableSpec(name: "t\($0)", folder: "t\($0)", vecSize: $1) }
        let fused = try TestConfiguration.server(TestConfiguration.json(tables: specs, fuse: true), in: directory.path)
        #expect(fused.volatileStore?.tableTags == ["hps_et.m.fused_embedding0", "hps_et.m.fused_embedding1",
                                                   "hps_et.m.fused_embedding2"])
        #expect(fused.volatileStore?.table("hps_et.m.fused_embedding2")?.memberCount == 2)
        #expect(fused.volatileStore?.table("hps_et.m.fused_embedding2")?.count == 100)
        let unfused = try TestConfiguration.server(TestConfiguration.json(tables: specs, fuse: false), in: directory.path)
        #expect(unfused.volatileStore?.tableTags == ["hps_et.m.t0", "hps_et.m.t1", "hps_et.m.t2", "hps_et.m.t3"])
    }

    /// Two servers, fused and unfused, over the same folders with the given keys per table.
    private func servers(_ tables: [RandomTable], defaults: [Double], in directory: String)
        throws -> (fused: LookupSession, unfused: LookupSession)
    {
        for (i, t) in tables.enumerated() { try t.write(to: joinPath(directory, "t\(i)")) }
        let specs = tables.enumerated().map {
            TableSpec(name: "t\($0)", folder: "t\($0)", vecSize: $1.vecSize, defaultValue: defaults[$0], maxPerSample: 64)
        }
        let fused = try TestConfiguration.server(TestConfiguration.json(tables: specs, fuse: true), in: directory)
        let unfused = try TestConfiguration.server(TestConfiguration.json(tables: specs, fuse: false), in: directory)
        return (try fused.session(model: "m"), try unfused.session(model: "m"))
    }

    @Test("fused lookups return bit-identical vectors to unfused ones")
    func fusedEqualsUnfused() throws {
        let directory = try TemporaryDirectory(prefix: "hps-fusion")
        defer { directory.remove() }
        // Vec sizes 8, 4, 8, 4: two groups of two.
        let tables = [8, 4, 8, 4].enumerated().map {
            RandomTable(count: 1500, vecSize: $1, seed: 10 + UInt64($0), keyRange: Int64($0) * 1000...Int64($0) * 1000 + 2999)
        }
        let (fused, unfused) = try servers(tables, defaults: [0, 0.25, -0.5, 1], in: directory.path)
        #expect(fused.plan.groups.count == 2)
        #expect(unfused.plan.groups.count == 4)

        var random = SplitMix64(seed: 20)
        for _ in 0..<5 {
            let requests: [(table: Int, keys: [Int64])] = (0..<4).map { t in
                (t, (0..<100).map { _ in Int64(random.next() % 6000) })
            }
            let a = try fused.lookup(tables: requests)
            let b = try unfused.lookup(tables: requests)
            for t in 0..<4 {
                #expect(bitwiseEqual(a[t], b[t]), "table \(t)")
                let expected = expectedRows(requests[t].keys, in: tables[t].reference, vecSize: tables[t].vecSize,
                                            defaultValue: Float([0, 0.25, -0.5, 1][t]))
                #expect(bitwiseEqual(a[t], expected), "table \(t)")
            }
        }
    }

    @Test("a key in two fused tables returns each table's own vector")
    func overlappingKeysStayApart() throws {
        let directory = try TemporaryDirectory(prefix: "hps-fusion")
        defer { directory.remove() }
        // The same 1000 keys in both tables, with different vectors.
        let keys = RandomTable(count: 1000, vecSize: 1, seed: 30, keyRange: 0...4999).keys
        let tables = [RandomTable(keys: keys, vecSize: 4, seed: 31), RandomTable(keys: keys, vecSize: 4, seed: 32)]
        let (fused, _) = try servers(tables, defaults: [0, 0], in: directory.path)
        #expect(fused.plan.groups.count == 1)
        #expect(fused.plan.groups[0].tables == [0, 1])

        for start in stride(from: 0, to: 1000, by: 100) {
            let batch = Array(keys[start..<(start + 100)])
            let out = try fused.lookup(tables: [(0, batch), (1, batch)])
            #expect(bitwiseEqual(out[0], Array(tables[0].vectors[(start * 4)..<((start + 100) * 4)])))
            #expect(bitwiseEqual(out[1], Array(tables[1].vectors[(start * 4)..<((start + 100) * 4)])))
        }
    }

    @Test("each table of a fused group keeps its own default value")
    func fusedDefaultsPerTable() throws {
        let directory = try TemporaryDirectory(prefix: "hps-fusion")
        defer { directory.remove() }
        let tables = (0..<3).map { RandomTable(count: 10, vecSize: 2, seed: 40 + UInt64($0), keyRange: 0...99) }
        let (fused, _) = try servers(tables, defaults: [1.5, -2, 0], in: directory.path)
        #expect(fused.plan.groups.count == 1)
        let missing: [Int64] = [1000, 1001]
        let out = try fused.lookup(tables: [(0, missing), (1, missing), (2, missing)])
        #expect(out[0] == [1.5, 1.5, 1.5, 1.5])
        #expect(out[1] == [-2, -2, -2, -2])
        #expect(out[2] == [0, 0, 0, 0])
    }

    @Test("fusion is on only when both the global and the model's flag are on")
    func modelFlagTurnsFusionOff() throws {
        let directory = try TemporaryDirectory(prefix: "hps-fusion")
        defer { directory.remove() }
        for i in 0..<2 { try RandomTable(count: 10, vecSize: 2, seed: UInt64(i)).write(to: joinPath(directory.path, "t\(i)")) }
        var json = TestConfiguration.json(tables: (0..<2).map { TableSpec(name: "t\($0)", folder: "t\($0)", vecSize: 2) },
                                          fuse: true)
        var root = try #require(json.objectValue)
        var model = try #require(root["models"]?.arrayValue?.first?.objectValue)
        model["fuse_embedding_table"] = .bool(false)
        root["models"] = .array([.object(model)])
        json = .object(root)
        let server = try TestConfiguration.server(json, in: directory.path)
        #expect(try server.session(model: "m").plan.fused == false)
        #expect(server.volatileStore?.tableTags == ["hps_et.m.t0", "hps_et.m.t1"])
    }
}
