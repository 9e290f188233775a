import HPSDemo
import HPSBenchmarks
import Glibc
import HPS
import HPSMapped

/// `hps bench --tiers`: restarting from the memory-mapped tier against
/// loading the same table into the hash map, and random lookups from each;
/// every timing that depends on a fresh process runs in one.
enum TierBenchmark {
    /// Runs the comparison on a table of `keys` random keys of vec size 128.
    static func run(keys: Int, lookups: Int, markdown: Bool) throws {
        let directory = try TemporaryDirectory(prefix: "hps-bench-tiers")
        defer { directory.remove() }
        let path = "\(directory.path)/table"
        try LoadBenchmark.writeTable(path: path, keys: keys, vecSize: 128)
        try PageCache.warm(path)
        let load = try median3 { try number(runSelf(["bench-probe", "load", path, "--threads", String(availableCores)]), 3) }
        let firstOpen = try MappedBenchmark.firstOpen(folder: path)
        let restart = try median3 { try number(runSelf(["bench-probe", "mapped-restart", path]), 0) }
        let rates = try runSelf(["bench-probe", "tier-lookups", path, "--lookups", String(lookups)])
            .split(separator: " ").compactMap { Double($0.trimmingCharacters(in: " \n")) }
        let bytes = keys * (8 + 128 * 4)
        if markdown {
            print("\n| tiers: table of \(keys) keys × vec 128 (\(bytes) bytes), page cache warm | seconds |")
            print("| --- | --- |")
            print("| load into the hash map (fresh process, median of 3) | \(format(load, 3)) |")
            print("| mapped tier, first open (builds the index beside the files) | \(format(firstOpen, 3)) |")
            print("| mapped tier, restart: fresh process, attach with the existing index, one lookup answered (median of 3) | \(format(restart, 4)) |")
            if rates.count == 2 {
                print("| \(lookups) random lookups, hash map (median of 5) | \(format(rates[0], 4)) |")
                print("| \(lookups) random lookups, mapped tier (median of 5) | \(format(rates[1], 4)) |")
            }
        } else {
            print("tiers, \(keys) keys × vec 128: hash-map load \(format(load, 3)) s; mapped first open \(format(firstOpen, 3)) s, restart \(format(restart, 4)) s")
            if rates.count == 2 {
                print("  \(lookups) random lookups: hash map \(format(rates[0], 4)) s, mapped \(format(rates[1], 4)) s")
            }
        }
    }

    /// In a fresh process: attach the folder with its existing index and answer one lookup.
    static func probeRestart(path: String) throws -> Double {
        let start = ContinuousClock.now
        let folder = try SparseModelFolder(path: path, table: "bench", vecSize: nil)
        let table = try MappedStore().attach("hps_et.bench.mapped", folders: [folder], keyType: .int64)
        var key: Int64 = 0
        var output = [Float](repeating: 0, count: folder.vecSize)
        output.withUnsafeMutableBufferPointer { out in
            withUnsafePointer(to: &key) { k in
                let run = [LookupRun(member: 0, keys: k, count: 1, output: out.baseAddress!)]
                _ = run.withUnsafeBufferPointer { table.lookup($0, defaults: nil, missed: nil, parallelism: 1) }
            }
        }
        return (ContinuousClock.now - start).seconds
    }

    /// In one process: the table in the hash map and in the mapped tier, and
    /// the median of 5 timings of `lookups` random lookups (all hits) from each.
    static func probeLookups(path: String, lookups: Int) throws -> (hashMap: Double, mapped: Double) {
        let folder = try SparseModelFolder(path: path, table: "bench", vecSize: nil)
        let store = HashMapStore(partitions: min(16, availableCores))
        let hashMap = try store.createTable("hps_et.bench.hash", vecSize: folder.vecSize, members: 1, expectedKeys: folder.keyCount)
        _ = try HierarchicalParameterServer.load(folder, into: hashMap, member: 0, model: "bench", rate: 1, keyType: .int64,
                                                 parallelism: availableCores)
        let mapped = try MappedStore().attach("hps_et.bench.mapped", folders: [folder], keyType: .int64)
        let keys = try folder.readAll().keys
        var random = SplitMix64(seed: 9)
        let queries = (0..<lookups).map { _ in keys[Int(random.next() % UInt64(keys.count))] }
        var output = [Float](repeating: 0, count: lookups * folder.vecSize)
        func time(_ table: any EmbeddingStoreTable) -> Double {
            queries.withUnsafeBufferPointer { q in
                output.withUnsafeMutableBufferPointer { out in
                    let run = [LookupRun(member: 0, keys: q.baseAddress!, count: lookups, output: out.baseAddress!)]
                    return run.withUnsafeBufferPointer { runs in
                        LookupBenchmark.median(runs: 5, warmup: 1) { _ = table.lookup(runs, defaults: nil, missed: nil, parallelism: 1) }
                    }
                }
            }
        }
        return (time(hashMap), time(mapped))
    }

    static func median3(_ body: () throws -> Double) rethrows -> Double {
        percentile([try body(), try body(), try body()], 0.5)
    }

    /// Field `index` of a probe's output, as a number.
    static func number(_ text: String, _ index: Int) throws -> Double {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard index < fields.count, let value = Double(fields[index]) else {
            throw CheckFailure(reason: "a benchmark probe printed \"\(text)\"")
        }
        return value
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return s
    }
}

/// `hps bench --seed-tiers`: the seed batch (fused, one call) served
/// entirely from each tier this build has, against the memcpy of the same
/// bytes, each tier's output checked against the hash map's.
enum SeedTierBenchmark {
    static func run(redisAddress: String?, rocksDB: Bool, runs: Int, markdown: Bool) throws {
        let model = SeedModel()
        let directory = try TemporaryDirectory(prefix: "hps-bench-seed-tiers")
        defer { directory.remove() }
        try model.write(to: directory.path)
        let base = try HPSConfiguration.load(path: directory.path + "/hps.json")
        var variants: [(String, HPSConfiguration)] = [("hash_map", base)]
        if let redisAddress {
            var configuration = base
            configuration.volatileDatabase.type = VolatileDatabaseType.redisCluster
            configuration.volatileDatabase.address = redisAddress
            variants.append(("redis_cluster", configuration))
        }
        for (type, enabled) in [(PersistentDatabaseType.rocksDB, rocksDB), (.mapped, true)] where enabled {
            var configuration = base
            configuration.volatileDatabase.type = VolatileDatabaseType.disabled
            configuration.persistentDatabase.type = type
            configuration.persistentDatabase.path = directory.path + "/db-\(type.rawValue)"
            variants.append((type.rawValue, configuration))
        }
        var random = SplitMix64(seed: 7)
        let batch = model.batch(&random)
        let t = model.tables, k = model.keysPerSample, dim = model.dim, b = model.batchSize
        let bytes = t * b * k * dim * 4
        let copy = LookupBenchmark.memcpySeconds(bytes: bytes, threads: 1, runs: runs)
        var reference: [Float]? = nil
        if markdown {
            print("\n| seed batch (8 × 6,656 keys, vec 128, fused, one call, 1 thread) served from | median | × memcpy of the same bytes (\(format(copy * 1e3, 3)) ms) | lookups/s | same vectors as the hash map |")
            print("| --- | --- | --- | --- | --- |")
        }
        for (name, configuration) in variants {
            let session = try HierarchicalParameterServer(configuration: configuration, backends: Backends.all, parallelism: 1).session(model: model.modelName)
            var output = [Float](repeating: .nan, count: bytes / 4)
            let timedRuns = runsCount(name)
            let seconds: Double = try output.withUnsafeMutableBufferPointer { out in
                try withKeyPointers(batch) { pointers in
                    var runs: [LookupRun] = []
                    runs.reserveCapacity(b * t)
                    for s in 0..<b {
                        for table in 0..<t {
                            runs.append(LookupRun(member: table, keys: pointers[table] + s * k, count: k,
                                                  output: out.baseAddress! + (s * t + table) * k * dim))
                        }
                    }
                    return try runs.withUnsafeBufferPointer { (runs) throws -> Double in
                        try LookupBenchmark.median(runs: timedRuns) { _ = try session.lookup(runs, parallelism: 1) }
                    }
                }
            }
            let same = reference.map { $0.elementsEqual(output) { $0.bitPattern == $1.bitPattern } } ?? true
            if reference == nil { reference = output }
            let rate = format(Double(t * b * k) / seconds / 1e6, 2) + " M"
            if markdown {
                print("| \(name) | \(format(seconds * 1e3, 3)) ms | \(format(seconds / copy, 2)) | \(rate) | \(same) |")
            } else {
                print("seed batch from \(name): \(format(seconds * 1e3, 3)) ms, \(format(seconds / copy, 2))× memcpy, \(rate) lookups/s, same vectors as the hash map: \(same)")
            }
        }
    }

    /// Fewer timed runs for the slow tiers.
    static func runsCount(_ tier: String) -> Int {
        tier == "hash_map" || tier == "mapped" ? 21 : 5
    }
}
