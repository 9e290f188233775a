import Foundation
import HPS
import HPSRocksDB
import HPSStoreTestSupport
import Testing

#if RocksDB
struct RocksDBStoreTests {
    /// A fresh database folder (not yet created) inside a temporary folder.
    private static func databasePath() throws -> (TemporaryDirectory, String) {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb")
        return (directory, directory.path + "/db")
    }

    /// The error of opening the database at `path`, or nil if it opened.
    private static func openError(_ path: String) -> RocksDBError? {
        do {
            _ = try RocksDBStore(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test("a quantized table stores rows as its vector_storage says, reads back what the hash map tier does, and keeps its storage across a reopen", arguments: [VectorStorage.int8, .fp16, .fp8])
    func quantizedStorage(storage: VectorStorage) throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let rows = RandomRows(count: 500, vecSize: 16, seed: 7)
        let expected = try storedRows(keys: rows.keys, vectors: rows.vectors, vecSize: 16, storage: storage)
        do {
            let store = try RocksDBStore(path: path, maxBatchSize: 64)
            let table = try store.createTable("hps_et.m.t", vecSize: 16, members: 1, expectedKeys: 500, storage: storage)
            #expect(try insert(table, keys: rows.keys, vectors: rows.vectors) == InsertCounts(inserted: 500, replaced: 0))
            // A row it cannot hold fails the insert whole, naming the key.
            var bad = Array(rows.vectors[0..<32])
            bad[20] = .infinity
            #expect(throws: StoreError.unrepresentable(table: "hps_et.m.t", key: 1, element: 4, value: .infinity, storage: storage)) {
                try insert(table, keys: [0, 1], vectors: bad)
            }
            #expect(table.count == 500)
        }
        let reopened = try RocksDBStore(path: path)
        let table = try #require(reopened.table("hps_et.m.t"))
        let (out, missed) = lookup(table, keys: rows.keys + [0])
        #expect(missed == [500])
        for (i, key) in rows.keys.enumerated() {
            #expect(bitwiseEqual(Array(out[(i * 16)..<((i + 1) * 16)]), expected[key]!), "key \(key)")
        }
        #expect(throws: StoreError.storageMismatch(kind: "rocks_db", table: "hps_et.m.t", stored: storage, requested: .fp32)) {
            try reopened.createTable("hps_et.m.t", vecSize: 16, members: 1, expectedKeys: 0)
        }
    }

    @Test("random keys round-trip: every element equals a dictionary's")
    func roundTrip() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path, maxBatchSize: 100)
        let table = try store.createTable("hps_et.m.t", vecSize: 5, members: 1, expectedKeys: 1000)
        let rows = RandomRows(count: 1000, vecSize: 5, seed: 1)
        let counts = try insert(table, keys: rows.keys, vectors: rows.vectors)
        #expect(counts == InsertCounts(inserted: 1000, replaced: 0))
        #expect(table.count == 1000)
        let reference = rows.reference
        let shuffled = rows.keys.shuffled()
        let (out, missed) = lookup(table, keys: shuffled)
        #expect(missed.isEmpty)
        for (i, key) in shuffled.enumerated() {
            #expect(bitwiseEqual(Array(out[(i * 5)..<((i + 1) * 5)]), reference[key]!))
        }
    }

    @Test("dropping a table drops its column family and records: gone after a reopen too; other tables keep their rows")
    func dropTable() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let rows = RandomRows(count: 200, vecSize: 3, seed: 4)
        do {
            let store = try RocksDBStore(path: path)
            let dropped = try store.createTable("hps_et.m.t.v1", vecSize: 3, members: 1, expectedKeys: 200)
            let kept = try store.createTable("hps_et.m.t", vecSize: 3, members: 1, expectedKeys: 200)
            try insert(dropped, keys: rows.keys, vectors: rows.vectors)
            try insert(kept, keys: rows.keys, vectors: rows.vectors)
            try store.dropTable("hps_et.m.t.v1")
            try store.dropTable("hps_et.m.none")  // a tag the store does not hold: no error
            #expect(store.tableTags == ["hps_et.m.t"])
            // The same tag again is a new, empty table.
            let again = try store.createTable("hps_et.m.t.v1", vecSize: 3, members: 1, expectedKeys: 200)
            #expect(again.count == 0)
            #expect(lookup(again, keys: rows.keys).missed.count == 200)
            try store.dropTable("hps_et.m.t.v1")
        }
        let reopened = try RocksDBStore(path: path)
        #expect(reopened.tableTags == ["hps_et.m.t"])
        let kept = try #require(reopened.table("hps_et.m.t"))
        #expect(kept.count == 200)
        #expect(lookup(kept, keys: rows.keys).missed.isEmpty)
    }

    @Test("misses get their member's default and their flat indices, ascending, across runs")
    func missesAndDefaults() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path, maxBatchSize: 3)
        let table = try store.createTable("hps_et.m.f", vecSize: 2, members: 2, expectedKeys: 10)
        try insert(table, member: 0, keys: [1, 2], vectors: [1, 1, 2, 2])
        try insert(table, member: 1, keys: [7], vectors: [7, 7])
        var out = [Float](repeating: .nan, count: 7 * 2)
        var missed = [Int](repeating: -1, count: 7)
        let keys0: [Int64] = [1, 9, 2, 7], keys1: [Int64] = [7, 1, 8]
        let defaults: [Float] = [-1, -2]
        let misses = keys0.withUnsafeBufferPointer { k0 in
            keys1.withUnsafeBufferPointer { k1 in
                out.withUnsafeMutableBufferPointer { o in
                    defaults.withUnsafeBufferPointer { d in
                        let runs = [LookupRun(member: 0, keys: k0.baseAddress!, count: 4, output: o.baseAddress!),
                                    LookupRun(member: 1, keys: k1.baseAddress!, count: 3, output: o.baseAddress! + 8)]
                        return runs.withUnsafeBufferPointer { table.lookup($0, defaults: d, missed: &missed, parallelism: 2) }
                    }
                }
            }
        }
        #expect(misses == 4)
        #expect(Array(missed[0..<4]) == [1, 3, 5, 6])
        #expect(out == [1, 1, -1, -1, 2, 2, -1, -1, 7, 7, -2, -2, -2, -2])
    }

    @Test("a lookup split across threads answers like a sequential one, misses ascending")
    func parallelLookup() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path, maxBatchSize: 1000)
        let table = try store.createTable("t", vecSize: 2, members: 2, expectedKeys: 20_000)
        // Even keys of member 0 are present, with vector (k, −k).
        let present = (0..<15_000).map { Int64($0 * 2) }
        try insert(table, keys: present, vectors: present.flatMap { [Float($0), -Float($0)] })
        // Three runs: 0..<20 000 of member 0, 5 000 keys of member 1 (all missing), 0..<12 345 of member 0.
        let keys0 = (0..<20_000).map(Int64.init), keys1 = (0..<5_000).map(Int64.init), keys2 = (0..<12_345).map(Int64.init)
        let total = keys0.count + keys1.count + keys2.count
        var out = [Float](repeating: .nan, count: total * 2)
        var missed = [Int](repeating: -1, count: total)
        let defaults: [Float] = [0.5, -0.5]
        let misses = keys0.withUnsafeBufferPointer { k0 in
            keys1.withUnsafeBufferPointer { k1 in
                keys2.withUnsafeBufferPointer { k2 in
                    out.withUnsafeMutableBufferPointer { o in
                        defaults.withUnsafeBufferPointer { d in
                            let runs = [LookupRun(member: 0, keys: k0.baseAddress!, count: k0.count, output: o.baseAddress!),
                                        LookupRun(member: 1, keys: k1.baseAddress!, count: k1.count, output: o.baseAddress! + 40_000),
                                        LookupRun(member: 0, keys: k2.baseAddress!, count: k2.count, output: o.baseAddress! + 50_000)]
                            return runs.withUnsafeBufferPointer { table.lookup($0, defaults: d, missed: &missed, parallelism: 4) }
                        }
                    }
                }
            }
        }
        let flat = keys0.map { (0, $0) } + keys1.map { (1, $0) } + keys2.map { (0, $0) }
        var expectedOut: [Float] = [], expectedMissed: [Int] = []
        for (i, (member, key)) in flat.enumerated() {
            if member == 0 && key % 2 == 0 {
                expectedOut += [Float(key), -Float(key)]
            } else {
                expectedOut += [defaults[member], defaults[member]]
                expectedMissed.append(i)
            }
        }
        #expect(misses == expectedMissed.count)
        #expect(Array(missed[0..<misses]) == expectedMissed)
        #expect(out == expectedOut)
    }

    @Test("concurrent inserts and lookups: every answer is whole, the count exact")
    func concurrentInsertsAndLookups() async throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path, maxBatchSize: 64)
        let table = try store.createTable("t", vecSize: 4, members: 2, expectedKeys: 4000)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<2 {
                group.addTask {
                    for batch in 0..<10 {
                        let keys = (0..<100).map { Int64(batch * 100 + $0) }
                        // Member `writer`, vector all (key + 1) × (writer + 1).
                        try insert(table, member: writer, keys: keys,
                                   vectors: keys.flatMap { [Float](repeating: Float(($0 + 1) * Int64(writer + 1)), count: 4) })
                    }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<20 {
                        let keys = (0..<1000).map(Int64.init)
                        let (out, missed) = lookup(table, member: 1, keys: keys, defaults: [-1, -1])
                        for (i, key) in keys.enumerated() {
                            let row = Array(out[(i * 4)..<((i + 1) * 4)])
                            let whole = row == [Float](repeating: -1, count: 4) || row == [Float](repeating: Float((key + 1) * 2), count: 4)
                            #expect(whole, "key \(key): \(row)")
                            if !whole { return }
                        }
                        #expect(missed.allSatisfy { out[$0 * 4] == -1 })
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(table.count == 2000)
    }

    @Test("fused members keep the same key apart")
    func fusedMembersApart() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path)
        let table = try store.createTable("hps_et.m.fused", vecSize: 3, members: 3, expectedKeys: 10)
        try insert(table, member: 0, keys: [5, 6], vectors: [0, 0, 0, 0, 0, 6])
        try insert(table, member: 2, keys: [5], vectors: [2, 2, 2])
        #expect(table.count == 3)
        #expect(lookup(table, member: 0, keys: [5]).vectors == [0, 0, 0])
        #expect(lookup(table, member: 2, keys: [5]).vectors == [2, 2, 2])
        #expect(lookup(table, member: 1, keys: [5, 6]).missed == [0, 1])
        #expect(erase(table, member: 0, keys: [5, 5, 99]) == 1)
        #expect(table.count == 2)
        #expect(lookup(table, member: 2, keys: [5]).vectors == [2, 2, 2])
        #expect(lookup(table, member: 0, keys: [5]).missed == [0])
    }

    @Test("a key repeated in a batch keeps its last vector and counts as replaced")
    func repeatedKeys() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let store = try RocksDBStore(path: path, maxBatchSize: 2)
        let table = try store.createTable("t", vecSize: 1, members: 1, expectedKeys: 10)
        let counts = try insert(table, keys: [1, 2, 1, 3, 1], vectors: [1, 2, 3, 4, 5])
        #expect(counts == InsertCounts(inserted: 3, replaced: 2))
        #expect(table.count == 3)
        #expect(lookup(table, keys: [1, 2, 3]).vectors == [5, 2, 4])
        #expect(try insert(table, keys: [3, 4], vectors: [0, 0]) == InsertCounts(inserted: 1, replaced: 1))
        #expect(table.count == 4)
    }

    @Test("reopening after close keeps the tables, their layout, vectors and count")
    func reopenKeepsData() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let rows = RandomRows(count: 300, vecSize: 4, seed: 2)
        do {
            let store = try RocksDBStore(path: path)
            let table = try store.createTable("hps_et.m.a", vecSize: 4, members: 2, expectedKeys: 300)
            try insert(table, member: 1, keys: rows.keys, vectors: rows.vectors)
        }
        let store = try RocksDBStore(path: path, readOnly: true)
        #expect(store.tableTags == ["hps_et.m.a"])
        let table = try #require(store.table("hps_et.m.a"))
        #expect(table.vecSize == 4 && table.memberCount == 2 && table.count == 300)
        let (out, missed) = lookup(table, member: 1, keys: rows.keys)
        #expect(missed.isEmpty)
        #expect(bitwiseEqual(out, rows.vectors))
        #expect(lookup(table, member: 0, keys: rows.keys).missed.count == 300)
        // Read-only: changes are refused with the path in the message.
        #expect(throws: StoreError.self) { try insert(table, keys: [1], vectors: [1, 2, 3, 4]) }
        #expect(erase(table, member: 1, keys: rows.keys) == 0)
        #expect(throws: StoreError.self) { try store.createTable("hps_et.m.b", vecSize: 4, members: 1, expectedKeys: 1) }
    }

    @Test("a table reopened with another vec size or member count is refused")
    func layoutMismatch() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        do {
            let store = try RocksDBStore(path: path)
            _ = try store.createTable("t", vecSize: 4, members: 1, expectedKeys: 1)
        }
        let store = try RocksDBStore(path: path)
        #expect(throws: StoreError.layoutMismatch(table: "t", vecSize: 4, members: 1, requestedVecSize: 8, requestedMembers: 1)) {
            try store.createTable("t", vecSize: 8, members: 1, expectedKeys: 1)
        }
    }

    @Test("read_only with no database says the database is missing")
    func readOnlyMissing() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        #expect(throws: RocksDBError.missing(path: path)) { try RocksDBStore(path: path, readOnly: true) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a second open while the first holds the database says it is locked")
    func secondOpenIsLocked() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let first = try RocksDBStore(path: path)
        let error = Self.openError(path)
        var lockedPath: String? = nil
        if case let .locked(p, _)? = error { lockedPath = p }
        #expect(lockedPath == path, "\(String(describing: error))")
        #expect(error?.description.contains(path) == true && error?.description.contains("locked") == true)
        _ = first
    }

    @Test("a garbled MANIFEST or CURRENT says the database is corrupt", arguments: ["MANIFEST", "CURRENT"])
    func corruptDatabase(file: String) throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        do {
            let store = try RocksDBStore(path: path)
            let table = try store.createTable("t", vecSize: 2, members: 1, expectedKeys: 1)
            try insert(table, keys: [1], vectors: [1, 2])
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
        let name = try #require(names.first { $0.hasPrefix(file) })
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path + "/" + name))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data("garbage, not RocksDB".utf8))
        try handle.close()
        let error = Self.openError(path)
        var corruptPath: String? = nil
        if case let .corrupt(p, _)? = error { corruptPath = p }
        #expect(corruptPath == path, "\(String(describing: error))")
    }

    @Test("a writer process holds the lock; writes it acknowledged before SIGKILL are all there after reopening")
    func durableAfterKill() throws {
        let (directory, path) = try Self.databasePath()
        defer { directory.remove() }
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let writer = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("hps-rocksdb-writer")
        try #require(FileManager.default.isExecutableFile(atPath: writer.path),
                     "hps-rocksdb-writer was not found at \(writer.path); build it with the tests (swift build --build-tests --traits RocksDB)")
        let batchSize = 500, vecSize = 8
        let process = Process()
        process.executableURL = writer
        process.arguments = [path, "\(batchSize)", "\(vecSize)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        // Read acknowledgements until a few batches are in, then kill mid-write.
        var text = ""
        let reader = pipe.fileHandleForReading
        while text.split(separator: "\n").count < 5 {
            let data = reader.availableData
            if data.isEmpty { break }
            text += String(decoding: data, as: UTF8.self)
        }
        // While the writer holds the database, this process cannot open it.
        let whileHeld = Self.openError(path)
        var heldPath: String? = nil
        if case let .locked(p, _)? = whileHeld { heldPath = p }
        #expect(heldPath == path, "\(String(describing: whileHeld))")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        text += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        // Only whole lines are acknowledgements.
        let lines = text.hasSuffix("\n") ? text.split(separator: "\n") : text.split(separator: "\n").dropLast()
        let acknowledged = lines.compactMap { Int($0) }
        #expect(acknowledged.count >= 5)
        #expect(acknowledged == Array(0..<acknowledged.count))

        let store = try RocksDBStore(path: path, readOnly: true)
        let table = try #require(store.table("hps_et.m.t"))
        #expect(table.count >= acknowledged.count * batchSize)
        let keys = (0..<(acknowledged.count * batchSize)).map(Int64.init)
        let (out, missed) = lookup(table, keys: keys)
        #expect(missed.isEmpty)
        #expect(out == keys.flatMap { [Float](repeating: Float($0), count: vecSize) })
    }

    @Test("a server with hash_map over rocks_db answers every key exactly, from both tiers")
    func serverTiers() throws {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-server")
        defer { directory.remove() }
        let rows = RandomRows(count: 400, vecSize: 4, seed: 3)
        try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                _ = try SparseModelFolder.write(path: directory.path + "/embeddings/t0", table: "t0", keys: k, vectors: v, vecSize: 4)
            }
        }
        let json = """
        {
          "supportlonglong": true,
          "volatile_db": {"type": "hash_map", "initial_cache_rate": 0.5},
          "persistent_db": {"type": "rocks_db", "path": "\(directory.path)/db"},
          "models": [{
            "model": "m", "sparse_files": ["embeddings/t0"], "embedding_table_names": ["t0"],
            "embedding_vecsize_per_table": [4], "maxnum_catfeature_query_per_table_per_sample": [8],
            "default_value_for_each_table": [0.5], "deployed_device_list": [0], "max_batch_size": 512
          }]
        }
        """
        let configPath = directory.path + "/hps.json"
        try json.write(toFile: configPath, atomically: false, encoding: .utf8)
        let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: configPath), backends: [.rocksDB],
                                                   parallelism: 1)
        #expect(server.persistentStore?.kind == "rocks_db")
        #expect(server.persistentStore?.table("hps_et.m.t0")?.count == 400)
        let session = try server.session(model: "m")
        let out = try session.lookup(table: 0, keys: rows.keys + [Int64.min])
        #expect(bitwiseEqual(Array(out[0..<(400 * 4)]), rows.vectors))
        #expect(Array(out[(400 * 4)...]) == [0.5, 0.5, 0.5, 0.5])
        let totals = session.statistics.totals
        #expect(totals.keys == 401)
        #expect(totals.tierHits == [200, 200])
        #expect(totals.defaults == 1)
    }

    @Test("a read_only server serves a database an earlier server loaded, loading nothing")
    func readOnlyServer() throws {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-server")
        defer { directory.remove() }
        let rows = RandomRows(count: 300, vecSize: 3, seed: 8)
        try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                _ = try SparseModelFolder.write(path: directory.path + "/embeddings/t0", table: "t0", keys: k, vectors: v, vecSize: 3)
            }
        }
        func start(readOnly: Bool, volatile: String) throws -> HierarchicalParameterServer {
            let json = """
            {
              "supportlonglong": true,
              "volatile_db": {"type": "\(volatile)"},
              "persistent_db": {"type": "rocks_db", "path": "\(directory.path)/db", "read_only": \(readOnly)},
              "models": [{
                "model": "m", "sparse_files": ["embeddings/t0"], "embedding_table_names": ["t0"],
                "embedding_vecsize_per_table": [3], "maxnum_catfeature_query_per_table_per_sample": [8],
                "default_value_for_each_table": [0], "deployed_device_list": [0], "max_batch_size": 512
              }]
            }
            """
            let configPath = directory.path + "/hps.json"
            try json.write(toFile: configPath, atomically: false, encoding: .utf8)
            return try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: configPath), backends: [.rocksDB],
                                                   parallelism: 1)
        }
        do { _ = try start(readOnly: false, volatile: "hash_map") }
        // The model files change; a read_only server must not load them.
        try FileManager.default.removeItem(atPath: directory.path + "/embeddings/t0/emb_vector")
        try Data(count: 300 * 3 * 4).write(to: URL(fileURLWithPath: directory.path + "/embeddings/t0/emb_vector"))
        let server = try start(readOnly: true, volatile: "disabled")
        let session = try server.session(model: "m")
        #expect(bitwiseEqual(try session.lookup(table: 0, keys: rows.keys), rows.vectors))
        // gpucache is on (HugeCTR's default) and the top tier is on disk: a CPU cache sits in front.
        #expect(session.tierNames == ["cpu_cache", "rocks_db"])
        #expect(session.statistics.totals.tierHits == [0, 300])
    }
}
#else
struct RocksDBAbsentTests {
    @Test("without the RocksDB trait, the module says the tier is not built (and has no StoreBackend.rocksDB)")
    func notBuilt() {
        #expect(!isRocksDBBuilt)
    }
}
#endif
