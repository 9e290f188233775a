import HPSCUDA
import HPS
import HPSDemo

/// `hps bench --device gpu --updates`: online updates applied to the GPU
/// tables (`EmbeddingCache.update`, as a Kafka consumer's batch reaches
/// them), vec 128, tables of 1M keys, batches of updated keys from host
/// memory: a static table in device memory, a dynamic cache holding every
/// key (updates in place) and a uvm cache (its mapped table and cached rows).
/// Against the physical limit in the same run: copying the same keys and
/// vectors from pageable host memory to the device. Host wall clock per
/// call (each waits for its device work), median of 50 after 5 warm-ups.
package enum GPUUpdateBenchmark {
    /// One measured line.
    package struct Row: Sendable {
        /// What was measured.
        package var name: String
        /// Keys per call.
        package var keys: Int
        /// Median microseconds per call.
        package var microseconds: Double
        /// The same batch's host-to-device copy, median microseconds.
        package var copyMicroseconds: Double

        /// Key updates per second.
        package var keysPerSecond: Double { Double(keys) / microseconds * 1e6 }
    }

    /// Runs on device `deviceIndex`; returns the card's name and the rows.
    package static func run(deviceIndex: Int = 0, tableKeys: Int = 1_000_000, dim: Int = 128,
                           batches: [Int] = [1000, 10_000, 100_000]) throws -> (device: String, rows: [Row]) {
        let device = try CUDADevice(index: deviceIndex)
        let kernels = GPUKernels(device: device)
        var random = SplitMix64(seed: 91)
        let keys = (0..<tableKeys).map { _ in Int64(bitPattern: random.next() >> 1) }
        let vectors = (0..<(tableKeys * dim)).map { _ in random.nextFloat(-1, 1) }
        let store = HashMapStore(partitions: 16)
        let lower = try store.createTable("hps_et.bench.update", vecSize: dim, members: 1, expectedKeys: tableKeys)
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in _ = try lower.insert(member: 0, keys: k, vectors: v, parallelism: 16) }
        }
        let staticTable = try GPUStaticTable(kernels: kernels, dim: dim, members: [(keys, vectors)], defaults: [0], int64Keys: true)
        let dynamic = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: tableKeys, members: 1, source: .tier(lower),
                                          defaults: [0], hitRateThreshold: 0.9, int64Keys: true)
        try dynamic.prefill(keys: [keys], fraction: 1)
        let mapped = try GPUStaticTable(kernels: kernels, dim: dim, members: [(keys, vectors)], defaults: [0], int64Keys: true,
                                        placement: .mappedHost)
        let uvm = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: tableKeys / 5, members: 1, source: .mappedTable(mapped),
                                      defaults: [0], hitRateThreshold: 0.9, int64Keys: true)
        try uvm.prefill(keys: [keys], fraction: 1)
        let stream = try CUDAStream(device: device)
        var rows: [Row] = []
        for batch in batches {
            // Distinct keys the tables hold, five sets rotated.
            let sets = 5
            let batchKeys = (0..<sets).map { _ in (0..<batch).map { _ in keys[Int(random.next() % UInt64(tableKeys))] } }
                .map { Array(Set($0)) }
            let batchVectors = batchKeys.map { set in (0..<(set.count * dim)).map { _ in random.nextFloat(-1, 1) } }
            let target = try DeviceBuffer<UInt8>(device: device, count: batch * (dim * 4 + 8))
            let copy = try time(sets: sets) { i in
                try stream.upload(batchKeys[i], to: target.address)
                try stream.upload(batchVectors[i], to: target.address + UInt64(batchKeys[i].count * 8))
                try stream.synchronize()
            }
            let tables: [(String, any EmbeddingCache, Bool)] = [
                ("static table in device memory", staticTable, true),
                ("dynamic cache holding every key (rows replaced in place)", dynamic, true),
                ("uvm cache: the mapped table and the cached rows (20% of the keys)", uvm, false),
            ]
            for (name, cache, everyKeyHeld) in tables {
                var failure: String?
                let median = try time(sets: sets) { i in
                    let report = try batchKeys[i].withUnsafeBufferPointer { k in
                        try batchVectors[i].withUnsafeBufferPointer { v in try cache.update(member: 0, keys: k, vectors: v) }
                    }
                    if report.unheldKeys != 0 || (everyKeyHeld && report.rows != batchKeys[i].count) {
                        failure = "\(name): \(report.rows) rows written and \(report.unheldKeys) keys not held, for \(batchKeys[i].count) held keys"
                    }
                }
                if let failure { throw ToolFailure(failure) }
                let keysPerCall = batchKeys.reduce(0) { $0 + $1.count } / sets
                rows.append(Row(name: "\(name), \(keysPerCall) keys per call", keys: keysPerCall, microseconds: median,
                                copyMicroseconds: copy))
            }
        }
        return (device.name, rows)
    }

    /// Median host microseconds of `body(i % sets)` over 50 calls after 5.
    static func time(sets: Int, _ body: (Int) throws -> Void) throws -> Double {
        var times: [Double] = []
        for i in 0..<55 {
            let start = ContinuousClock.now
            try body(i % sets)
            if i >= 5 { times.append((ContinuousClock.now - start).microseconds) }
        }
        return percentile(times, 0.5)
    }
}
