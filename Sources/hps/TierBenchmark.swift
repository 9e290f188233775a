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
        try warmPageCache(path)
        let load = try median3 { try number(runSelf(["bench", "--probe-load", path, "--probe-threads", String(availableCores)]), 3) }
        let firstOpen = try MappedBenchmark.firstOpen(folder: path)
        let restart = try median3 { try number(runSelf(["bench", "--probe-mapped-restart", path]), 0) }
        let rates = try runSelf(["bench", "--probe-tier-lookups", path, "--lookups", String(lookups)])
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
        let start = MonotonicClock.nanoseconds()
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
        return Double(MonotonicClock.nanoseconds() - start) / 1e9
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
        let values = [try body(), try body(), try body()].sorted()
        return values[1]
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
