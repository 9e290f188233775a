import HPSBenchmarks
import Foundation
import HPS
import HPSMapped
import HPSStoreTestSupport
import Testing

struct MappedStoreTests {
    /// Writes rows as a sparse model folder.
    @discardableResult
    private static func write(_ keys: [Int64], _ vectors: [Float], vecSize: Int, to path: String, table: String = "t") throws -> SparseModelFolder {
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: path, table: table, keys: k, vectors: v, vecSize: vecSize)
            }
        }
    }

    @Test("lookups return the files' rows, members apart, misses with defaults")
    func lookupsEqualRows() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let a = RandomRows(count: 2000, vecSize: 6, seed: 1), b = RandomRows(count: 700, vecSize: 6, seed: 2, keyRange: 0...5000)
        let folders = [try Self.write(a.keys, a.vectors, vecSize: 6, to: directory.path + "/a"),
                       try Self.write(b.keys, b.vectors, vecSize: 6, to: directory.path + "/b")]
        let store = MappedStore()
        let table = try store.attachTable("hps_et.m.ab", folders: folders)
        #expect(table.rebuiltIndexes == [true, true])
        #expect(table.count == 2700 && table.memberCount == 2 && table.vecSize == 6)
        #expect(store.tableTags == ["hps_et.m.ab"])
        let shuffled = a.keys.shuffled()
        let reference = a.reference
        let (out, missed) = lookup(table, member: 0, keys: shuffled)
        #expect(missed.isEmpty)
        for (i, key) in shuffled.enumerated() {
            #expect(bitwiseEqual(Array(out[(i * 6)..<((i + 1) * 6)]), reference[key]!))
        }
        let (outB, missedB) = lookup(table, member: 1, keys: b.keys)
        #expect(missedB.isEmpty && bitwiseEqual(outB, b.vectors))
        // A key of member 1 that member 0 lacks misses there, with member 0's default.
        let onlyB = try #require(b.keys.first { reference[$0] == nil })
        let (outMiss, missedMiss) = lookup(table, member: 0, keys: [a.keys[0], onlyB, a.keys[1]], defaults: [-7, -9])
        #expect(missedMiss == [1])
        #expect(Array(outMiss[6..<12]) == [Float](repeating: -7, count: 6))
    }

    @Test("a lookup split across threads answers exactly like a sequential one")
    func parallelLookup() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        // Member 0 holds the even keys below 100 000, member 1 the multiples of 3.
        let even = (0..<50_000).map { Int64($0 * 2) }, third = (0..<20_000).map { Int64($0 * 3) }
        let folders = [try Self.write(even, even.map { Float($0) }, vecSize: 1, to: directory.path + "/a"),
                       try Self.write(third, third.map { -Float($0) }, vecSize: 1, to: directory.path + "/b")]
        let table = try MappedStore().attachTable("t", folders: folders)
        let runKeys: [[Int64]] = [(0..<40_000).map(Int64.init), [], (0..<30_001).map(Int64.init), (5..<9).map(Int64.init)]
        let runMembers = [0, 1, 1, 0]
        let total = runKeys.reduce(0) { $0 + $1.count }
        func run(parallelism: Int) -> ([Float], [Int]) {
            var out = [Float](repeating: .nan, count: total)
            var missed = [Int](repeating: -1, count: total)
            let flatKeys = runKeys.flatMap { $0 }
            let defaults: [Float] = [0.25, 0.75]
            let misses = flatKeys.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { o in
                    defaults.withUnsafeBufferPointer { d in
                        var runs: [LookupRun] = [], start = 0
                        for (keys, member) in zip(runKeys, runMembers) {
                            runs.append(LookupRun(member: member, keys: k.baseAddress! + start, count: keys.count, output: o.baseAddress! + start))
                            start += keys.count
                        }
                        return runs.withUnsafeBufferPointer { table.lookup($0, defaults: d, missed: &missed, parallelism: parallelism) }
                    }
                }
            }
            return (out, Array(missed[0..<misses]))
        }
        let (sequentialOut, sequentialMissed) = run(parallelism: 1)
        let (parallelOut, parallelMissed) = run(parallelism: 4)
        #expect(parallelOut == sequentialOut)
        #expect(parallelMissed == sequentialMissed)
        // And both are right.
        var expected: [Float] = [], expectedMissed: [Int] = []
        for (keys, member) in zip(runKeys, runMembers) {
            for key in keys {
                if member == 0 && key % 2 == 0 && key < 100_000 { expected.append(Float(key)) }
                else if member == 1 && key % 3 == 0 && key < 60_000 { expected.append(-Float(key)) }
                else { expectedMissed.append(expected.count); expected.append(member == 0 ? 0.25 : 0.75) }
            }
        }
        #expect(sequentialOut == expected)
        #expect(sequentialMissed == expectedMissed)
    }

    @Test("a key repeated in the files answers with its last row")
    func duplicatesLastRowWins() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let folder = try Self.write([3, 4, 3, 3], [1, 1, 2, 2, 3, 3, 4, 4], vecSize: 2, to: directory.path + "/t")
        let table = try MappedStore().attachTable("t", folders: [folder])
        #expect(table.count == 2)
        #expect(lookup(table, keys: [3, 4]).vectors == [4, 4, 2, 2])
    }

    @Test("a second attach maps the existing index instead of rebuilding it")
    func restartReusesIndex() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let rows = RandomRows(count: 5000, vecSize: 4, seed: 4)
        let folder = try Self.write(rows.keys, rows.vectors, vecSize: 4, to: directory.path + "/t")
        let first = try MappedStore().attachTable("t", folders: [folder])
        #expect(first.rebuiltIndexes == [true])
        let indexPath = first.indexPaths[0]
        let before = try FileManager.default.attributesOfItem(atPath: indexPath)[.modificationDate] as? Date
        let second = try MappedStore().attachTable("t", folders: [folder])
        #expect(second.rebuiltIndexes == [false])
        let after = try FileManager.default.attributesOfItem(atPath: indexPath)[.modificationDate] as? Date
        #expect(before == after)
        #expect(bitwiseEqual(lookup(second, keys: rows.keys).vectors, rows.vectors))
    }

    @Test("an index older than its files is rebuilt and answers with the new rows")
    func staleIndexRebuilt() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let path = directory.path + "/t"
        let folder = try Self.write([1, 2], [1, 1, 2, 2], vecSize: 2, to: path)
        _ = try MappedStore().attachTable("t", folders: [folder])
        // Same size, new contents: only the mtime (and the rows) tell.
        usleep(20_000)
        let changed = try Self.write([1, 5], [9, 9, 5, 5], vecSize: 2, to: path)
        let table = try MappedStore().attachTable("t", folders: [changed])
        #expect(table.rebuiltIndexes == [true])
        #expect(lookup(table, keys: [1, 5]).vectors == [9, 9, 5, 5])
        #expect(lookup(table, keys: [2]).missed == [0])
    }

    @Test("a corrupt or truncated index is rebuilt", arguments: ["magic", "truncated", "empty"])
    func corruptIndexRebuilt(damage: String) throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let rows = RandomRows(count: 100, vecSize: 3, seed: 5)
        let folder = try Self.write(rows.keys, rows.vectors, vecSize: 3, to: directory.path + "/t")
        let indexPath = try MappedStore().attachTable("t", folders: [folder]).indexPaths[0]
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: indexPath))
        switch damage {
        case "magic": try handle.write(contentsOf: Data("NOTMAGIC".utf8))
        case "truncated": try handle.truncate(atOffset: 200)
        default: try handle.truncate(atOffset: 0)
        }
        try handle.close()
        let table = try MappedStore().attachTable("t", folders: [folder])
        #expect(table.rebuiltIndexes == [true])
        #expect(bitwiseEqual(lookup(table, keys: rows.keys).vectors, rows.vectors))
    }

    @Test("32-bit keys: a key that does not fit is refused, whether the index is built or reused")
    func keysOutOfRange32() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let wide = try Self.write([1, 1 << 40], [1, 2], vecSize: 1, to: directory.path + "/wide")
        #expect(throws: MappedError.keyOutOfRange(path: wide.keyPath, key: 1 << 40, index: 1)) {
            try MappedStore().attachTable("t", folders: [wide], keyType: .int32)
        }
        _ = try MappedStore().attachTable("t", folders: [wide], keyType: .int64)
        #expect(throws: MappedError.keyOutOfRange(path: wide.keyPath, key: 1 << 40, index: 1)) {
            try MappedStore().attachTable("t", folders: [wide], keyType: .int32)
        }
        let narrow = try Self.write([1, 7], [1, 7], vecSize: 1, to: directory.path + "/narrow")
        _ = try MappedStore().attachTable("t", folders: [narrow], keyType: .int64)
        let table = try MappedStore().attachTable("t", folders: [narrow], keyType: .int32)
        #expect(table.rebuiltIndexes == [false])
        #expect(lookup(table, keys: [7, 1]).vectors == [7, 1])
    }

    @Test("a folder that cannot hold its index has it kept in the index folder (persistent_db.path)")
    func indexFolderFallback() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let rows = RandomRows(count: 300, vecSize: 2, seed: 6)
        let folder = try Self.write(rows.keys, rows.vectors, vecSize: 2, to: directory.path + "/model/t")
        // Tests run as root, which writes anywhere: block the index's name with a folder instead.
        try FileManager.default.createDirectory(atPath: folder.path + "/hps_index/blocked", withIntermediateDirectories: true)
        #expect(throws: MappedError.self) { try MappedStore().attachTable("t", folders: [folder]) }
        let indexFolder = directory.path + "/indexes/hps"
        let first = try MappedStore(indexFolder: indexFolder).attachTable("t", folders: [folder])
        #expect(first.rebuiltIndexes == [true])
        #expect(first.indexPaths[0].hasPrefix(indexFolder + "/t-") && first.indexPaths[0].hasSuffix(".hps_index"))
        let second = try MappedStore(indexFolder: indexFolder).attachTable("t", folders: [folder])
        #expect(second.rebuiltIndexes == [false])
        #expect(second.indexPaths == first.indexPaths)
        #expect(bitwiseEqual(lookup(second, keys: rows.keys).vectors, rows.vectors))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test("the tier refuses inserts and creating empty tables, and erases nothing")
    func readOnlyTier() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped")
        defer { directory.remove() }
        let folder = try Self.write([1], [1, 1], vecSize: 2, to: directory.path + "/t")
        let store = MappedStore()
        let table = try store.attachTable("t", folders: [folder])
        #expect(throws: StoreError.self) { try insert(table, keys: [2], vectors: [2, 2]) }
        #expect(erase(table, member: 0, keys: [1]) == 0)
        #expect(lookup(table, keys: [1]).vectors == [1, 1])
        #expect(throws: StoreError.self) { try store.createTable("other", vecSize: 2, members: 1, expectedKeys: 1) }
    }

    @Test("a server with hash_map over mapped answers every key exactly, from both tiers")
    func serverTiers() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped-server")
        defer { directory.remove() }
        let rows = RandomRows(count: 400, vecSize: 4, seed: 3)
        try Self.write(rows.keys, rows.vectors, vecSize: 4, to: directory.path + "/embeddings/t0", table: "t0")
        let json = """
        {
          "supportlonglong": true,
          "volatile_db": {"type": "hash_map", "initial_cache_rate": 0.5},
          "persistent_db": {"type": "mapped"},
          "models": [{
            "model": "m", "sparse_files": ["embeddings/t0"], "embedding_table_names": ["t0"],
            "embedding_vecsize_per_table": [4], "maxnum_catfeature_query_per_table_per_sample": [8],
            "default_value_for_each_table": [0.5], "deployed_device_list": [0], "max_batch_size": 512
          }]
        }
        """
        let configPath = directory.path + "/hps.json"
        try json.write(toFile: configPath, atomically: false, encoding: .utf8)
        let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: configPath), backends: [.mapped], parallelism: 1)
        #expect(server.persistentStore?.kind == "mapped")
        let session = try server.session(model: "m")
        let out = try session.lookup(table: 0, keys: rows.keys + [Int64.min])
        #expect(bitwiseEqual(Array(out[0..<(400 * 4)]), rows.vectors))
        #expect(Array(out[(400 * 4)...]) == [0.5, 0.5, 0.5, 0.5])
        let totals = session.statistics.totals
        #expect(totals.tierHits == [200, 200])
        #expect(totals.defaults == 1)
    }
}

struct MappedBenchmarkTests {
    @Test("the benchmark times a first open and a restart that reuses the index")
    func benchmarkTimes() throws {
        let directory = try TemporaryDirectory(prefix: "hps-mapped-bench")
        defer { directory.remove() }
        let path = directory.path + "/t"
        try LoadBenchmark.writeTable(path: path, keys: 20_000, vecSize: 8)
        let first = try MappedBenchmark.firstOpen(folder: path)
        let restart = try MappedBenchmark.restart(folder: path)
        #expect(first > 0 && restart > 0)
        #expect(FileManager.default.fileExists(atPath: path + "/hps_index"))
    }
}
