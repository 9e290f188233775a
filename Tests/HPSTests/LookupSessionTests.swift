import HPSStoreTestSupport
import Testing

@testable import HPS

struct LookupSessionTests {
    /// A deployment of two tables written to a temporary folder:
    /// t0 (vec 4, default 0.5) and t1 (vec 3, default −1).
    private struct Deployment {
        let directory: TemporaryDirectory
        let tables: [RandomTable]
        let server: HierarchicalParameterServer
        let session: LookupSession

        init(supportLongLong: Bool = true, fuse: Bool = false, maxBatchSize: Int = 16, maxPerSample: Int = 4) throws {
            directory = try TemporaryDirectory(prefix: "hps-lookup")
            tables = [RandomTable(count: 500, vecSize: 4, seed: 1, keyRange: 0...1999),
                      RandomTable(count: 300, vecSize: 3, seed: 2, keyRange: 0...1999)]
            for (i, t) in tables.enumerated() { try t.write(to: joinPath(directory.path, "embeddings/t\(i)")) }
            let json = TestConfiguration.json(
                tables: [TableSpec(name: "t0", folder: "embeddings/t0", vecSize: 4, defaultValue: 0.5, maxPerSample: maxPerSample),
                         TableSpec(name: "t1", folder: "embeddings/t1", vecSize: 3, defaultValue: -1, maxPerSample: maxPerSample)],
                maxBatchSize: maxBatchSize, supportLongLong: supportLongLong, fuse: fuse)
            server = try TestConfiguration.server(json, in: directory.path)
            session = try server.session(model: "m")
        }
    }

    @Test("a lookup returns n × vec size floats equal to the files' rows")
    func lookupReturnsFileRows() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let keys = Array(d.tables[0].keys[0..<64])
        let out = try d.session.lookup(table: 0, keys: keys)
        #expect(out.count == 64 * 4)
        #expect(bitwiseEqual(out, Array(d.tables[0].vectors[0..<(64 * 4)])))
        #expect(d.server.warnings.isEmpty, "\(d.server.warnings)")
        #expect(d.server.loadReports.map(\.loaded) == [500, 300])
    }

    @Test("a missing key gets its table's default value")
    func missingKeysGetDefault() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let present = d.tables[1].keys[7]
        let keys: [Int64] = [5000, present, -3]
        let out = try d.session.lookup(table: 1, keys: keys)
        #expect(out == [-1, -1, -1] + Array(d.tables[1].row(7)) + [-1, -1, -1])
        let out0 = try d.session.lookup(table: 0, keys: [5000])
        #expect(out0 == [0.5, 0.5, 0.5, 0.5])
        let totals = d.session.statistics.totals
        #expect(totals.keys == 4)
        #expect(totals.defaults == 3)
        #expect(totals.tierHits == [1])
    }

    @Test("a multi-table lookup answers each request from its own table", arguments: [false, true])
    func multiTableLookup(fuse: Bool) throws {
        let d = try Deployment(fuse: fuse)
        defer { d.directory.remove() }
        var random = SplitMix64(seed: 3)
        let requests: [(table: Int, keys: [Int64])] = [0, 1, 0].map { t in
            (t, (0..<30).map { _ in Int64(random.next() % 2500) })
        }
        let out = try d.session.lookup(tables: requests)
        #expect(out.count == 3)
        for (i, request) in requests.enumerated() {
            let t = request.table
            let expected = expectedRows(request.keys, in: d.tables[t].reference, vecSize: d.tables[t].vecSize,
                                        defaultValue: t == 0 ? 0.5 : -1)
            #expect(bitwiseEqual(out[i], expected), "request \(i)")
        }
    }

    @Test("sparse lookups pool each sample's vectors by sum, mean and sqrtn", arguments: Combiner.allCases)
    func sparseLookup(combiner: Combiner) throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let t = d.tables[0]
        // Four samples: three ids, none, one missing id, two ids.
        let ids: [Int64] = [t.keys[0], t.keys[1], t.keys[2], 9999, t.keys[3], t.keys[4]]
        let offsets = [0, 3, 3, 4, 6]
        let out = try d.session.sparseLookup(table: 0, ids: ids, offsets: offsets, combiner: combiner)
        #expect(out.count == 4 * 4)

        let reference = t.reference
        for s in 0..<4 {
            let members = ids[offsets[s]..<offsets[s + 1]]
            for dim in 0..<4 {
                let sum = members.reduce(Double(0)) { $0 + Double(reference[$1]?[dim] ?? 0.5) }
                let n = Double(members.count)
                let expected: Double
                switch combiner {
                case _ where n == 0: expected = 0
                case .sum: expected = sum
                case .mean: expected = sum / n
                case .sqrtn: expected = sum / n.squareRoot()
                }
                #expect(abs(Double(out[s * 4 + dim]) - expected) <= 1e-5 * max(1, abs(expected)),
                        "sample \(s) dim \(dim): \(out[s * 4 + dim]) vs \(expected)")
            }
        }
        #expect(out[4..<8].allSatisfy { $0 == 0 }, "an empty sample pools to zeros")
    }

    @Test("sparse lookups refuse offsets that do not describe the ids")
    func sparseLookupBadOffsets() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let ids: [Int64] = [1, 2, 3, 4]
        for offsets in [[1, 4], [0, 3], [0, 3, 2, 4], [], [0, 5]] {
            let error = #expect(throws: LookupError.self, "offsets \(offsets)") {
                try d.session.sparseLookup(table: 0, ids: ids, offsets: offsets, combiner: .sum)
            }
            guard case .invalidOffsets = error else {
                Issue.record("offsets \(offsets) gave \(String(describing: error))")
                continue
            }
        }
        // No samples at all is fine.
        #expect(try d.session.sparseLookup(table: 0, ids: [], offsets: [0], combiner: .mean).isEmpty)
    }

    @Test("more keys than max_batch_size × maxnum_catfeature_query_per_table_per_sample are refused")
    func tooManyKeys() throws {
        let d = try Deployment(maxBatchSize: 16, maxPerSample: 4)
        defer { d.directory.remove() }
        #expect(try d.session.lookup(table: 0, keys: [Int64](repeating: 1, count: 64)).count == 64 * 4)
        let error = #expect(throws: LookupError.self) {
            try d.session.lookup(table: 0, keys: [Int64](repeating: 1, count: 65))
        }
        #expect(error == .tooManyKeys(model: "m", table: "t0", keys: 65, maxBatchSize: 16, maxPerSample: 4))
        let text = error?.description ?? ""
        #expect(text.contains("16"))
        #expect(text.contains("4"))
        #expect(text.contains("65"))
        // The limit is per table: two requests for one table add up.
        #expect(throws: LookupError.self) {
            try d.session.lookup(tables: [(0, [Int64](repeating: 1, count: 40)), (0, [Int64](repeating: 1, count: 40))])
        }
    }

    @Test("an int32 deployment refuses a key of 2^32 or a negative key in a lookup")
    func int32KeysInLookup() throws {
        let d = try Deployment(supportLongLong: false)
        defer { d.directory.remove() }
        #expect(d.session.keyType == .int32)
        #expect(throws: LookupError.keyOutOfRange(table: "t0", key: 1 << 32)) {
            try d.session.lookup(table: 0, keys: [1, 1 << 32])
        }
        #expect(throws: LookupError.keyOutOfRange(table: "t1", key: -1)) {
            try d.session.lookup(table: 1, keys: [-1])
        }
        #expect(try d.session.lookup(table: 0, keys: [Int64(UInt32.max)]) == [0.5, 0.5, 0.5, 0.5])
    }

    @Test("an int32 deployment refuses a model file with a key of 2^32")
    func int32DeploymentRejectsFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-lookup")
        defer { directory.remove() }
        let folder = try RandomTable(keys: [1, 2, 1 << 32], vecSize: 2, seed: 4).write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2)], supportLongLong: false)
        let error = #expect(throws: HPSError.self) { try TestConfiguration.server(json, in: directory.path) }
        #expect(error?.code == .modelFiles)
        #expect(error?.context == HPSError.Context(model: "m", file: folder.keyPath))
        #expect(error?.cause as? ModelFileError == .keyOutOfRange(path: folder.keyPath, key: 1 << 32, index: 2))
        #expect(error?.message == ModelFileError.keyOutOfRange(path: folder.keyPath, key: 1 << 32, index: 2).description)
    }

    @Test("unknown models and tables are errors that list what exists")
    func unknownModelAndTable() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let modelError = #expect(throws: LookupError.self) { try d.server.session(model: "nope") }
        #expect(modelError == .unknownModel("nope", available: ["m"]))
        #expect(modelError?.description.contains("nope") == true)

        let tableError = #expect(throws: LookupError.self) { try d.session.tableIndex("t9") }
        #expect(tableError == .unknownTable(model: "m", table: "t9", available: ["t0", "t1"]))
        #expect(tableError?.description.contains("t0, t1") == true)
        #expect(throws: LookupError.self) { try d.session.tableIndex("2") }
        #expect(throws: LookupError.self) { try d.session.tableIndex("-1") }
        #expect(throws: LookupError.self) { try d.session.lookup(table: 2, keys: [1]) }
        #expect(throws: LookupError.self) { try d.session.lookup(table: -1, keys: [1]) }
    }

    @Test("a table is found by name or by index")
    func tableIndexByNameOrIndex() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        #expect(try d.session.tableIndex("t0") == 0)
        #expect(try d.session.tableIndex("t1") == 1)
        #expect(try d.session.tableIndex("0") == 0)
        #expect(try d.session.tableIndex("1") == 1)
    }

    @Test("an empty key list returns no floats")
    func emptyLookup() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        #expect(try d.session.lookup(table: 0, keys: []).isEmpty)
        let out = try d.session.lookup(tables: [(0, []), (1, [d.tables[1].keys[0]])])
        #expect(out[0].isEmpty)
        #expect(out[1] == Array(d.tables[1].row(0)))
    }

    @Test("folder paths resolve against the configuration's folder")
    func relativePathsResolve() throws {
        let d = try Deployment()
        defer { d.directory.remove() }
        let resolved = HierarchicalParameterServer.resolve("embeddings/t0", base: d.directory.path)
        #expect(resolved == d.directory.path + "/embeddings/t0")
        #expect(HierarchicalParameterServer.resolve("/abs/t0", base: d.directory.path) == "/abs/t0")
        #expect(d.server.loadReports.map(\.path) == [d.directory.path + "/embeddings/t0", d.directory.path + "/embeddings/t1"])
    }

    @Test("a table with no keys loads and answers every key with its default")
    func emptyTable() throws {
        let directory = try TemporaryDirectory(prefix: "hps-lookup")
        defer { directory.remove() }
        try RandomTable(keys: [], vecSize: 3, seed: 5).write(to: joinPath(directory.path, "t0"))
        #expect(try fileSize(joinPath(directory.path, "t0/key")) == 0)
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 3, defaultValue: 2)])
        let server = try TestConfiguration.server(json, in: directory.path)
        #expect(try server.session(model: "m").lookup(table: 0, keys: [1, 2]) == [2, 2, 2, 2, 2, 2])
    }

    @Test("initial_cache_rate loads the first part of a folder and warns that the rest answer defaults")
    func initialCacheRate() throws {
        let directory = try TemporaryDirectory(prefix: "hps-lookup")
        defer { directory.remove() }
        let table = RandomTable(count: 100, vecSize: 2, seed: 6)
        try table.write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(
            tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2, defaultValue: 7, maxPerSample: 100)],
            extra: [("volatile_db", .object(JSONObject([("type", .string("hash_map")), ("initial_cache_rate", .double(0.25))])))])
        let server = try TestConfiguration.server(json, in: directory.path)
        #expect(server.loadReports.first?.loaded == 25)
        #expect(server.warnings.contains { $0.contains("loaded 25 of 100 keys") }, "\(server.warnings)")
        let out = try server.session(model: "m").lookup(table: 0, keys: table.keys)
        #expect(bitwiseEqual(Array(out[0..<50]), Array(table.vectors[0..<50])))
        #expect(out[50...].allSatisfy { $0 == 7 })
    }

    @Test("two models with the same table names are served apart")
    func twoModels() throws {
        let directory = try TemporaryDirectory(prefix: "hps-lookup")
        defer { directory.remove() }
        let keys = (0..<50).map(Int64.init)
        let a = RandomTable(keys: keys, vecSize: 2, seed: 7), b = RandomTable(keys: keys, vecSize: 2, seed: 8)
        try a.write(to: joinPath(directory.path, "a"))
        try b.write(to: joinPath(directory.path, "b"))
        var root = try #require(TestConfiguration.json(model: "ma", tables: [TableSpec(name: "t", folder: "a", vecSize: 2)],
                                                       fuse: true).objectValue)
        let second = try #require(TestConfiguration.json(model: "mb", tables: [TableSpec(name: "t", folder: "b", vecSize: 2)],
                                                         fuse: true)["models"]?.arrayValue)
        root["models"] = .array((root["models"]?.arrayValue ?? []) + second)
        let server = try TestConfiguration.server(.object(root), in: directory.path)
        #expect(server.volatileStore?.tableTags == ["hps_et.ma.fused_embedding0", "hps_et.mb.fused_embedding0"])
        #expect(bitwiseEqual(try server.session(model: "ma").lookup(table: 0, keys: keys), a.vectors))
        #expect(bitwiseEqual(try server.session(model: "mb").lookup(table: 0, keys: keys), b.vectors))
    }
}
