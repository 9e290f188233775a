import HPSCUDA
import Glibc
import HPS
import HPSDemo

/// The GPU caches' figures for `hps bench --device gpu`, for the dynamic
/// cache (misses from the CPU hash map) and the uvm cache (misses from the
/// table in mapped host memory): with capacity equal to the table, after a
/// pre-fill (every key must hit), and at 20% of the table with Zipf(1.2)
/// keys (hit rate and rate in steady state). Keys start on the device; each
/// call's time is host wall clock, since a call waits for its miss count.
enum GPUCacheBenchmark {
    /// One measured line.
    struct Row {
        var name: String
        var microseconds: Double
        var keys: Int
        var hitRate: Double
    }

    static func run(kernels: GPUKernels, tableKeys: Int = 1_000_000, batch: Int = 1_000_000, dim: Int = 128) throws -> [Row] {
        let device = kernels.device
        var random = SplitMix64(seed: 77)
        let keys = (0..<tableKeys).map { _ in Int64(bitPattern: random.next() >> 1) }
        let store = HashMapStore(partitions: 16)
        let lower = try store.createTable("hps_et.bench.cache", vecSize: dim, members: 1, expectedKeys: tableKeys)
        let vectors = (0..<(tableKeys * dim)).map { Float($0 & 1023) * 0.5 }
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in _ = try lower.insert(member: 0, keys: k, vectors: v, parallelism: 16) }
        }
        let output = try DeviceBuffer<Float>(device: device, count: batch * dim)
        var rows: [Row] = []
        let mapped = try GPUStaticTable(kernels: kernels, dim: dim, members: [(keys, vectors)], defaults: [0],
                                        int64Keys: true, placement: .mappedHost)
        let sources: [(name: String, source: GPUDynamicCache.MissSource)] = [
            ("dynamic cache", .tier(lower)), ("uvm cache (table in mapped host memory)", .mappedTable(mapped)),
        ]

        // Capacity = table, pre-filled: uniform random keys, all hits.
        let sets = 4
        let uniform = try DeviceBuffer(device: device, copying: (0..<(sets * batch)).map { _ in keys[Int(random.next() % UInt64(tableKeys))] })
        for (name, source) in sources {
            let full = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: tableKeys, members: 1, source: source,
                                           defaults: [0], hitRateThreshold: 0.9, int64Keys: true)
            try full.prefill(keys: [keys], fraction: 1)
            let timed = try timeCalls(full, keys: uniform, sets: sets, count: batch, calls: 40, warmup: 5, output: output)
            rows.append(Row(name: "\(name), capacity = table (\(tableKeys) keys), pre-filled, \(batch) uniform keys, vec \(dim)",
                            microseconds: timed.median, keys: batch, hitRate: timed.hitRate))
        }

        // 20% capacity, Zipf(1.2) keys (rank r drawn with weight r^-1.2), hit-rate threshold 0.9.
        var cumulative = [Double](repeating: 0, count: tableKeys)
        var total = 0.0
        for r in 0..<tableKeys { total += 1 / pow12(Double(r + 1)); cumulative[r] = total }
        let order = keys.shuffled(using: &random)
        func zipfKey() -> Int64 {
            let u = Double(random.next() >> 11) / Double(1 << 53) * total
            var lo = 0, hi = tableKeys - 1
            while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] < u { lo = mid + 1 } else { hi = mid } }
            return order[lo]
        }
        let zipfBatch = batch / 4
        // Fresh keys for every call: a set reused every few calls would end up
        // cached whole and hide the misses of the distribution's tail.
        let zipfSets = 60, zipfWarmup = 20
        let zipf = try DeviceBuffer(device: device, copying: (0..<(zipfSets * zipfBatch)).map { _ in zipfKey() })
        for (name, source) in sources {
            let partial = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: tableKeys / 5, members: 1, source: source,
                                              defaults: [0], hitRateThreshold: 0.9, int64Keys: true)
            let timed = try timeCalls(partial, keys: zipf, sets: zipfSets, count: zipfBatch, calls: zipfSets,
                                      warmup: zipfWarmup, output: output)
            partial.applyPendingInserts()
            let s = partial.detailedStatistics, warm = timed.warm
            if s.failedInserts > 0 {
                throw ToolFailure("\(name): \(s.failedInserts) inserts failed, the last with \(s.lastInsertError ?? "no message")")
            }
            let calls = s.synchronousFills + s.asynchronousInserts - warm.synchronousFills - warm.asynchronousInserts
            func ms(_ path: KeyPath<GPUDynamicCache.Statistics, UInt64>) -> String {
                String(String(Double(s[keyPath: path] - warm[keyPath: path]) / 1e6 / Double(max(1, calls))).prefix(5))
            }
            rows.append(Row(name: "\(name), capacity 20% of \(tableKeys) keys, \(zipfBatch) Zipf(1.2) keys per call, vec \(dim), steady state (\(zipfSets - zipfWarmup) timed calls: \(s.synchronousFills - warm.synchronousFills) filled before returning, \(s.asynchronousInserts - warm.asynchronousInserts) inserted after, \(s.evictions - warm.evictions) evictions; host ms per call: \(ms(\.missNanoseconds)) handling misses after the kernel, \(ms(\.fetchNanoseconds)) reading the tier below, \(ms(\.evictNanoseconds)) evicting)",
                            microseconds: timed.median, keys: zipfBatch, hitRate: timed.hitRate))
        }
        return rows
    }

    /// `calls` lookups of `count` device keys, call i reading key set i % sets,
    /// each timed on the host clock; the first `warmup` are not counted.
    /// - Returns: the median microseconds and hit rate of the counted calls,
    ///   and the cache's counters when counting began.
    static func timeCalls(_ cache: GPUDynamicCache, keys: DeviceBuffer<Int64>, sets: Int, count: Int, calls: Int, warmup: Int,
                          output: DeviceBuffer<Float>) throws -> (median: Double, hitRate: Double, warm: GPUDynamicCache.Statistics) {
        var times: [Double] = [], hits = 0, looked = 0
        var warm = cache.detailedStatistics
        for i in 0..<calls {
            if i == warmup { warm = cache.detailedStatistics }
            let start = ContinuousClock.now
            let report = try cache.lookup(deviceKeys: keys.address + UInt64((i % sets) * count * 8), count: count,
                                          runs: [(0, count)], output: output.address)
            let us = (ContinuousClock.now - start).microseconds
            if i >= warmup { times.append(us); hits += report.hits; looked += report.keys }
        }
        return (percentile(times, 0.5), Double(hits) / Double(max(1, looked)), warm)
    }

    static func pow12(_ x: Double) -> Double {
        // x^1.2 = x · x^0.2, without Foundation.
        x * exp2(0.2 * log2(x))
    }
}
