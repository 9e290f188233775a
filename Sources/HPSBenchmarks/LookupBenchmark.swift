package import HPS
package import HPSDemo
import CHPSSupport
import Dispatch
import Glibc

/// The lookup benchmarks of `hps bench`, each measured in the same run as a
/// memcpy of the same bytes: the seed batch fused and unfused, and 1M random
/// lookups from a 4M-key table of vec size 128.
package enum LookupBenchmark {
    /// One measured line.
    package struct Row: Sendable {
        /// What was measured.
        package var name: String
        /// Threads used.
        package var threads: Int
        /// Median seconds of one run.
        package var seconds: Double
        /// Median seconds of a memcpy of the same output bytes with the same threads.
        package var memcpySeconds: Double
        /// Keys looked up per run (0 for a copy).
        package var keys: Int
        /// Bytes of vectors written per run.
        package var bytes: Int

        /// Time relative to memcpy of the same bytes.
        package var ratio: Double { seconds / memcpySeconds }
    }

    /// Median seconds of `runs` calls of `body` after `warmup` calls.
    package static func median(runs: Int, warmup: Int = 2, _ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            try body()
            times.append((ContinuousClock.now - start).seconds)
        }
        return percentile(times, 0.5)
    }

    /// Median seconds of each body over `runs` rounds after `warmup` rounds;
    /// a round calls every body once, in order. Why: on a shared host the
    /// memory's speed drifts within seconds, and measuring a lookup and the
    /// copy it is divided by in alternation puts each slow phase on both.
    package static func interleavedMedians<E: Error>(runs: Int, warmup: Int = 2,
                                                    _ bodies: [() throws(E) -> Void]) throws(E) -> [Double] {
        var times = [[Double]](repeating: [], count: bodies.count)
        for round in 0..<(warmup + runs) {
            for (i, body) in bodies.enumerated() {
                let start = ContinuousClock.now
                try body()
                if round >= warmup { times[i].append((ContinuousClock.now - start).seconds) }
            }
        }
        return times.map { percentile($0, 0.5) }
    }

    /// Median seconds of copying `bytes` bytes between two buffers on `threads` threads.
    package static func memcpySeconds(bytes: Int, threads: Int, runs: Int) -> Double {
        let job = MemcpyJob(bytes: bytes, threads: threads)
        return median(runs: runs) { job.run() }
    }

    /// `count` zeroed floats at a 64-byte boundary, like the gather's output.
    static func alignedFloats(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        memset(raw, 0, count * 4)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: count), count: count)
    }

    /// A copy of `bytes` bytes between two buffers on `threads` threads, ready to be timed.
    final class MemcpyJob {
        let bytes: Int
        let threads: Int
        private let source: UnsafeMutableRawPointer
        private let target: UnsafeMutableRawPointer

        init(bytes: Int, threads: Int) {
            self.bytes = bytes
            self.threads = threads
            source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            memset(source, 1, bytes)
            memset(target, 0, bytes)
        }

        deinit {
            source.deallocate()
            target.deallocate()
        }

        func run() {
            let source = self.source, target = self.target
            parallelChunks(count: bytes / 64, parallelism: threads, minimumChunk: 4096) { range in
                memcpy(target + range.lowerBound * 64, source + range.lowerBound * 64, range.count * 64)
            }
        }
    }

    /// The seed batch, fused (one call, a run per sample and table into the
    /// concatenated layout) and unfused (one call per table), and the
    /// memcpy of the same bytes.
    package static func seedBatch(model: SeedModel, threads: Int, runs: Int) throws -> [Row] {
        let directory = try TemporaryDirectory(prefix: "hps-bench")
        defer { directory.remove() }
        try model.write(to: directory.path)
        var configuration = try HPSConfiguration.load(path: joinPath(directory.path, "hps.json"))
        let fused = try HierarchicalParameterServer(configuration: configuration, parallelism: threads).session(model: model.modelName)
        configuration.fuseEmbeddingTable = false
        let unfused = try HierarchicalParameterServer(configuration: configuration, parallelism: threads).session(model: model.modelName)

        var random = SplitMix64(seed: 7)
        let batch = model.batch(&random)
        let t = model.tables, k = model.keysPerSample, dim = model.dim, b = model.batchSize
        let keys = t * b * k
        let bytes = keys * dim * 4
        let output = alignedFloats(keys * dim)
        defer { output.deallocate() }

        let copy = MemcpyJob(bytes: bytes, threads: threads)
        let gather = GatherJob(rows: t * model.vocab, dim: dim, lookups: keys, threads: threads)
        let gatherByTable = GatherJob(rows: t * model.vocab, dim: dim, lookups: keys, threads: threads, bands: t)
        // The runs point into `batch`'s arrays, so they are built and used inside this closure.
        let (times, warm) = try withKeyPointers(batch) { pointers in
            let fusedRuns: [LookupRun] = (0..<b).flatMap { s in
                (0..<t).map { table in
                    LookupRun(member: table, keys: pointers[table] + s * k, count: k,
                              output: output.baseAddress! + (s * t + table) * k * dim)
                }
            }
            let unfusedRuns: [LookupRun] = (0..<t).map { table in
                LookupRun(member: table, keys: pointers[table], count: b * k, output: output.baseAddress! + table * b * k * dim)
            }
            let lookupFused = { () throws(LookupError) in
                try fusedRuns.withUnsafeBufferPointer { (runs) throws(LookupError) in _ = try fused.lookup(runs) }
            }
            let lookupFusedByTable = { () throws(LookupError) in
                try unfusedRuns.withUnsafeBufferPointer { (runs) throws(LookupError) in _ = try fused.lookup(runs) }
            }
            // The order of a round: no lookup follows a body that read the same
            // rows. (The fused table's one-run-per-table lookup once followed the
            // fused lookup of the same keys, and found some of their lines still cached.)
            let times = try interleavedMedians(runs: runs, [
                lookupFused,
                copy.run,
                // The fused table with one run per table (its keys in order, into a
                // table-by-table output): the same calls as unfused but one. It
                // differs from the fused lookup in the number of runs, and in reading
                // one table's rows at a time, which the load put side by side.
                lookupFusedByTable,
                gather.run,
                gatherByTable.run,
                {
                    for run in unfusedRuns {
                        try [run].withUnsafeBufferPointer { (runs) throws(LookupError) in _ = try unfused.lookup(runs) }
                    }
                },
            ])
            // The fused lookups back to back, as warm as their table gets while it
            // serves batch after batch: to set beside the warm copy below.
            return (times, [try median(runs: runs, lookupFused), try median(runs: runs, lookupFusedByTable)])
        }
        let (fusedSeconds, copySeconds, fusedByTableSeconds, floor, floorByTable, unfusedSeconds)
            = (times[0], times[1], times[2], times[3], times[4], times[5])
        // The copy alone, back to back, so that its 54 MB stay in the
        // last-level cache as far as it holds them: the warmest copy of these bytes.
        let warmCopySeconds = median(runs: runs) { copy.run() }
        let warmFloor = median(runs: runs) { gather.run() }
        let label = "seed batch (\(t) tables × \(model.vocab) keys, vec \(dim), \(b) × \(k) keys per table)"
        return [
            Row(name: "memcpy of the seed batch's \(bytes) bytes", threads: threads, seconds: copySeconds, memcpySeconds: copySeconds,
                keys: 0, bytes: bytes),
            Row(name: "memcpy of the seed batch's \(bytes) bytes, its runs back to back instead of between the others",
                threads: threads, seconds: warmCopySeconds, memcpySeconds: copySeconds, keys: 0, bytes: bytes),
            Row(name: "\(label), fused", threads: threads, seconds: fusedSeconds, memcpySeconds: copySeconds, keys: keys, bytes: bytes),
            Row(name: "\(label), fused, back to back (× the back-to-back memcpy)", threads: threads,
                seconds: warm[0], memcpySeconds: warmCopySeconds, keys: keys, bytes: bytes),
            Row(name: "\(label), unfused", threads: threads, seconds: unfusedSeconds, memcpySeconds: copySeconds, keys: keys, bytes: bytes),
            Row(name: "\(label), fused, one run per table into per-table outputs", threads: threads,
                seconds: fusedByTableSeconds, memcpySeconds: copySeconds, keys: keys, bytes: bytes),
            Row(name: "\(label), fused, one run per table, back to back (× the back-to-back memcpy)", threads: threads,
                seconds: warm[1], memcpySeconds: warmCopySeconds, keys: keys, bytes: bytes),
            Row(name: "as many random rows of \(t * model.vocab), vec \(dim), by row number (no index: the gather alone)",
                threads: threads, seconds: floor, memcpySeconds: copySeconds, keys: keys, bytes: bytes),
            Row(name: "the gather alone, back to back (× the back-to-back memcpy)", threads: threads,
                seconds: warmFloor, memcpySeconds: warmCopySeconds, keys: keys, bytes: bytes),
            Row(name: "the gather alone, one table's \(model.vocab) rows at a time (the order of one run per table)",
                threads: threads, seconds: floorByTable, memcpySeconds: copySeconds, keys: keys, bytes: bytes),
        ]
    }

    /// A table of `tableKeys` random keys of vec size `dim`, built in memory.
    package static func randomTable(keys tableKeys: Int, dim: Int, threads: Int,
                                    storage: VectorStorage = .fp32) throws -> (HashMapTable, [Int64]) {
        let store = HashMapStore(partitions: min(16, availableCores))
        let table = try store.hashMapTable("hps_et.bench.random", vecSize: dim, members: 1, expectedKeys: tableKeys, storage: storage)
        var random = SplitMix64(seed: 99)
        var keys = [Int64](repeating: 0, count: tableKeys)
        for i in 0..<tableKeys { keys[i] = Int64(bitPattern: random.next() >> 1) }
        let chunk = 262_144
        var vectors = [Float](repeating: 0, count: chunk * dim)
        var start = 0
        while start < tableKeys {
            let n = min(chunk, tableKeys - start)
            for i in 0..<(n * dim) { vectors[i] = Float(i & 1023) }
            try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in
                    _ = try table.insert(member: 0, keys: UnsafeBufferPointer(rebasing: k[start..<(start + n)]),
                                         vectors: UnsafeBufferPointer(rebasing: v[0..<(n * dim)]), parallelism: threads)
                }
            }
            start += n
        }
        return (table, keys)
    }

    /// `lookups` random lookups from `table`, whose keys are `tableKeys`, and
    /// the memcpy of the same bytes.
    package static func randomLookups(table: HashMapTable, tableKeys: [Int64], lookups: Int, threads: Int, runs: Int) -> [Row] {
        var random = SplitMix64(seed: 5)
        let keys = (0..<lookups).map { _ in tableKeys[Int(random.next() % UInt64(tableKeys.count))] }
        let dim = table.vecSize
        let output = alignedFloats(lookups * dim)
        defer { output.deallocate() }
        let bytes = lookups * dim * 4
        let copy = MemcpyJob(bytes: bytes, threads: threads)
        let gather = GatherJob(rows: tableKeys.count, dim: dim, lookups: lookups, threads: threads)
        let times = keys.withUnsafeBufferPointer { keys in
            let run = [LookupRun(member: 0, keys: keys.baseAddress!, count: lookups, output: output.baseAddress!)]
            return run.withUnsafeBufferPointer { run in
                interleavedMedians(runs: runs, [
                    { _ = table.lookup(run, defaults: nil, missed: nil, parallelism: threads) },
                    copy.run,
                    gather.run,
                ])
            }
        }
        let (seconds, copySeconds, floor) = (times[0], times[1], times[2])
        return [
            Row(name: "memcpy of \(bytes) bytes", threads: threads, seconds: copySeconds, memcpySeconds: copySeconds, keys: 0, bytes: bytes),
            Row(name: "\(lookups) random lookups from \(tableKeys.count) keys, vec \(dim)", threads: threads,
                seconds: seconds, memcpySeconds: copySeconds, keys: lookups, bytes: bytes),
            Row(name: "\(lookups) random rows of \(tableKeys.count), vec \(dim), by row number (no index: the gather alone)",
                threads: threads, seconds: floor, memcpySeconds: copySeconds, keys: lookups, bytes: bytes),
        ]
    }

    /// Copies `lookups` random rows of `dim` floats out of a flat array of
    /// `rows` rows (in huge pages, as the store's vectors are) by row number,
    /// prefetching every line of a row `HashMapTable.copyDistance` rows ahead
    /// and storing as the store does (streaming stores for an output of
    /// `HashMapTable.streamingBytes` or more), on `threads` threads: what the
    /// random reads cost with no index at all, the floor under any lookup of
    /// as many rows. With `bands` > 1 the rows are split into that many equal
    /// bands, and each successive share of the lookups reads from one band,
    /// as a lookup table by table reads a fused table that was loaded table by table.
    final class GatherJob {
        let rowBytes: Int
        let rows: Int
        let lookups: Int
        let threads: Int
        private let source: UnsafeMutableRawPointer
        private let output: UnsafeMutableRawPointer
        private let picks: [Int]

        init(rows: Int, dim: Int, lookups: Int, threads: Int, bands: Int = 1) {
            self.rowBytes = dim * 4
            self.rows = rows
            self.lookups = lookups
            self.threads = threads
            source = LargeAllocation.allocate(bytes: rows * rowBytes)
            memset(source, 1, rows * rowBytes)
            output = UnsafeMutableRawPointer.allocate(byteCount: lookups * rowBytes, alignment: 64)
            memset(output, 0, lookups * rowBytes)
            var random = SplitMix64(seed: 11)
            let bandRows = rows / bands, perBand = (lookups + bands - 1) / bands
            picks = (0..<lookups).map { i in (i / perBand) * bandRows + Int(random.next() % UInt64(bandRows)) }
        }

        deinit {
            LargeAllocation.release(source, bytes: rows * rowBytes)
            output.deallocate()
        }

        func run() {
            let d = HashMapTable.copyDistance
            let streaming = lookups * rowBytes >= HashMapTable.streamingBytes
            let source = self.source, output = self.output, rowBytes = self.rowBytes
            picks.withUnsafeBufferPointer { picks in
                parallelChunks(count: lookups, parallelism: threads, minimumChunk: 4096) { range in
                    for i in range {
                        if i + d < range.upperBound { hps_prefetch_lines(source + picks[i + d] * rowBytes, rowBytes) }
                        if streaming {
                            hps_copy_streaming(output + i * rowBytes, source + picks[i] * rowBytes, rowBytes)
                        } else {
                            (output + i * rowBytes).copyMemory(from: source + picks[i] * rowBytes, byteCount: rowBytes)
                        }
                    }
                    if streaming { hps_streaming_fence() }
                }
            }
        }
    }
}
