import HPSBenchmarks
import HPSRocksDB
import Glibc
import HPS
import HPSMapped

/// `hps bench --tier-rates`: random lookups (1M from 4M keys of vec size
/// 128 by default, one thread) from the RocksDB tier, cold and warm, and from
/// the mapped tier, each against the hash map on the same keys and a memcpy
/// of the same bytes, in one fresh process.
///
/// Cold means: a fresh process opens the database (so RocksDB's block cache
/// is empty) after the database's files were dropped from the OS page cache
/// with `posix_fadvise(POSIX_FADV_DONTNEED)` (see `PageCache`); the first
/// call is timed once. Warm is the median of the calls after it.
enum PersistentTierBenchmark {
    static let rocksTag = "hps_et.bench.rocks"
    /// Warm RocksDB calls timed: a call of 1M keys takes seconds.
    static let rocksRuns = 5

    /// Rows of the result table: (measurement, figure).
    static func run(keys: Int, lookups: Int, runs: Int) throws -> [(String, String)] {
        let directory = try TemporaryDirectory(prefix: "hps-bench-persistent")
        defer { directory.remove() }
        let folder = "\(directory.path)/table", database = "\(directory.path)/rocksdb"
        try LoadBenchmark.writeTable(path: folder, keys: keys, vecSize: 128)
        var rows: [(String, String)] = []
        let rocksDB = isRocksDBBuilt
        var cacheNote = ""
        if rocksDB {
            let load = try runSelf(["bench-probe", "rocksdb-load", folder, "--db", database])
            rows.append(("RocksDB tier: load \(keys) keys × vec 128 (sync writes, \(65_536)-key batches), then flush and compact to one level (separate process)",
                         "load \(format(try TierBenchmark.number(load, 0), 1)) s, compact \(format(try TierBenchmark.number(load, 1), 1)) s"))
            let before = PageCache.residency(database)
            PageCache.drop(database)
            let after = PageCache.residency(database)
            cacheNote = "database files \(before.bytes) bytes, in the page cache before the drop \(percent(before)), after \(percent(after))"
        }
        try PageCache.warm(folder)
        let output = try runSelf(["bench-probe", "persistent-lookups", folder, "--db", rocksDB ? database : "",
                                  "--lookups", String(lookups), "--runs", String(runs)])
        let t = try (0..<6).map { try TierBenchmark.number(output, $0) }
        let (rocksCold, rocksWarm, hashMap, mapped, copy, rocksMmap) = (t[0], t[1], t[2], t[3], t[4], t[5])
        let what = "\(lookups) random lookups from \(keys) keys, vec 128, 1 thread"
        func figure(_ seconds: Double) -> String {
            "\(format(seconds * 1e3, 1)) ms = \(format(Double(lookups) / seconds / 1e6, 3)) M lookups/s, \(format(seconds / copy, 2))× memcpy, \(format(seconds / hashMap, 2))× hash map"
        }
        rows.append(("memcpy of the same \(lookups * 512) bytes (median of \(runs))", "\(format(copy * 1e3, 1)) ms"))
        rows.append(("\(what): hash map (median of \(runs))", figure(hashMap)))
        if rocksDB {
            rows.append(("\(what): RocksDB tier, cold (fresh process, empty block cache; \(cacheNote)), first call", figure(rocksCold)))
            rows.append(("\(what): RocksDB tier, warm (same process, median of \(rocksRuns))", figure(rocksWarm)))
            rows.append(("\(what): RocksDB tier with mmap reads (not the default), warm (same process, median of \(rocksRuns))", figure(rocksMmap)))
        } else {
            rows.append(("\(what): RocksDB tier", "not built (build with --traits RocksDB)"))
        }
        rows.append(("\(what): mapped tier, files in the page cache (median of \(runs))", figure(mapped)))
        return rows
    }

    static func percent(_ residency: (bytes: Int, resident: Int)) -> String {
        format(100 * Double(residency.resident) / Double(max(1, residency.bytes)), 1) + "%"
    }

    /// In a fresh process: loads the folder into table `rocksTag` of a new
    /// database, then flushes and compacts it; prints the seconds of each.
    static func probeLoad(folder path: String, database: String) throws -> (load: Double, compact: Double) {
        #if RocksDB
        let folder = try SparseModelFolder(path: path, table: "bench", vecSize: nil)
        let store = try RocksDBStore(path: database)
        let table = try store.createTable(rocksTag, vecSize: folder.vecSize, members: 1, expectedKeys: folder.keyCount)
        let report = try HierarchicalParameterServer.load(folder, into: table, member: 0, model: "bench", rate: 1,
                                                          keyType: .int64, parallelism: 1)
        let start = ContinuousClock.now
        try (table as? RocksDBTable)?.compact()
        return (report.seconds, (ContinuousClock.now - start).seconds)
        #else
        throw CheckFailure(reason: "this build has no RocksDB tier; build with --traits RocksDB")
        #endif
    }

    /// In a fresh process: `lookups` random keys of the folder (all hits)
    /// looked up from the RocksDB database (cold: the first call; warm: the
    /// median of `runs` more), the hash map and the mapped tier, and a memcpy
    /// of the same bytes. Every answer is compared with the hash map's.
    /// Returns seconds; the RocksDB figures are -1 without a database.
    static func probeLookups(folder path: String, database: String?, lookups: Int, runs: Int) throws -> [Double] {
        let folder = try SparseModelFolder(path: path, table: "bench", vecSize: nil)
        let vecSize = folder.vecSize
        var random = SplitMix64(seed: 9)
        let keys = try folder.readAll().keys
        let queries = (0..<lookups).map { _ in keys[Int(random.next() % UInt64(keys.count))] }
        var output = [Float](repeating: 0, count: lookups * vecSize)
        func once(_ table: any EmbeddingStoreTable) -> (seconds: Double, misses: Int) {
            queries.withUnsafeBufferPointer { q in
                output.withUnsafeMutableBufferPointer { out in
                    let run = [LookupRun(member: 0, keys: q.baseAddress!, count: lookups, output: out.baseAddress!)]
                    return run.withUnsafeBufferPointer { runs in
                        let start = ContinuousClock.now
                        let misses = table.lookup(runs, defaults: nil, missed: nil, parallelism: 1)
                        return ((ContinuousClock.now - start).seconds, misses)
                    }
                }
            }
        }
        func median(_ table: any EmbeddingStoreTable, runs: Int) -> Double {
            percentile((0..<runs).map { _ in once(table).seconds }, 0.5)
        }
        var rocksCold = -1.0, rocksWarm = -1.0, rocksMmap = -1.0
        var rocksAnswer: [Float]? = nil
        if let database, !database.isEmpty {
            // Opened first, before the hash map's load fills memory and the caches.
            var configuration = PersistentDatabaseConfiguration()
            configuration.type = .rocksDB
            configuration.path = database
            configuration.readOnly = true
            guard let factory = Backends.all.factory(persistent: .rocksDB) else {
                throw CheckFailure(reason: "this build has no RocksDB tier; build with --traits RocksDB")
            }
            let store = try factory(configuration)
            guard let table = store.table(rocksTag) else { throw CheckFailure(reason: "\(database) has no table \(rocksTag)") }
            let cold = once(table)
            guard cold.misses == 0 else { throw CheckFailure(reason: "RocksDB missed \(cold.misses) of \(lookups) keys") }
            rocksCold = cold.seconds
            rocksAnswer = output
            rocksWarm = median(table, runs: rocksRuns)
            #if RocksDB
            // The same files through mmap (read-only opens take no lock): warm, as the page cache now is.
            let mapped = try RocksDBStore(path: database, readOnly: true, mmapReads: true)
            guard let mmapTable = mapped.table(rocksTag) else { throw CheckFailure(reason: "\(database) has no table \(rocksTag)") }
            _ = once(mmapTable)
            guard output.elementsEqual(rocksAnswer!, by: { $0.bitPattern == $1.bitPattern }) else {
                throw CheckFailure(reason: "RocksDB with and without mmap reads answered different vectors")
            }
            rocksMmap = median(mmapTable, runs: rocksRuns)
            #endif
        }
        let store = HashMapStore(partitions: min(16, availableCores))
        let hashMap = try store.createTable("hps_et.bench.hash", vecSize: vecSize, members: 1, expectedKeys: folder.keyCount)
        _ = try HierarchicalParameterServer.load(folder, into: hashMap, member: 0, model: "bench", rate: 1, keyType: .int64,
                                                 parallelism: availableCores)
        let mappedTable = try MappedStore().attach("hps_et.bench.mapped", folders: [folder], keyType: .int64)
        _ = once(hashMap)
        let reference = output
        if let rocksAnswer, !rocksAnswer.elementsEqual(reference, by: { $0.bitPattern == $1.bitPattern }) {
            throw CheckFailure(reason: "RocksDB and the hash map answered different vectors")
        }
        let hashSeconds = median(hashMap, runs: runs)
        _ = once(mappedTable)
        guard output.elementsEqual(reference, by: { $0.bitPattern == $1.bitPattern }) else {
            throw CheckFailure(reason: "the mapped tier and the hash map answered different vectors")
        }
        let mappedSeconds = median(mappedTable, runs: runs)
        let copy = LookupBenchmark.memcpySeconds(bytes: lookups * vecSize * 4, threads: 1, runs: runs)
        return [rocksCold, rocksWarm, hashSeconds, mappedSeconds, copy, rocksMmap]
    }
}
