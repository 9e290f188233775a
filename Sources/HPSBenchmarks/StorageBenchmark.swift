package import HPS

/// `hps bench --storage`: each `vector_storage` of the hash map tier on one
/// core, in the same run as memcpy of the float32 output and the fp32
/// table: random lookups from a table of vec size 128 and 64, and the host
/// bytes per key the table holds.
package enum StorageBenchmark {
    /// One measured line.
    package struct Row: Sendable {
        /// The storage.
        package var storage: VectorStorage
        /// Floats per vector.
        package var dim: Int
        /// Median seconds of the lookups.
        package var seconds: Double
        /// Median seconds of memcpy of the float32 output's bytes, in the same rounds.
        package var memcpySeconds: Double
        /// Keys looked up per run.
        package var lookups: Int
        /// Bytes the table holds per key (index and row arena, as allocated).
        package var bytesPerKey: Double
    }

    /// Measures every storage at vec 128 and 64.
    package static func run(tableKeys: Int, lookups: Int, runs: Int) throws -> [Row] {
        var rows: [Row] = []
        for dim in [128, 64] {
            for storage in VectorStorage.allCases {
                let (table, keys) = try LookupBenchmark.randomTable(keys: tableKeys, dim: dim, threads: availableCores,
                                                                    storage: storage)
                var random = SplitMix64(seed: 5)
                let queries = (0..<lookups).map { _ in keys[Int(random.next() % UInt64(keys.count))] }
                let output = UnsafeMutableBufferPointer<Float>.allocate(capacity: lookups * dim)
                defer { output.deallocate() }
                output.initialize(repeating: 0)
                let copy = LookupBenchmark.MemcpyJob(bytes: lookups * dim * 4, threads: 1)
                let times = queries.withUnsafeBufferPointer { q in
                    let run = [LookupRun(member: 0, keys: q.baseAddress!, count: lookups, output: output.baseAddress!)]
                    return run.withUnsafeBufferPointer { run in
                        LookupBenchmark.interleavedMedians(runs: runs, [
                            { _ = table.lookup(run, defaults: nil, missed: nil, parallelism: 1) },
                            copy.run,
                        ])
                    }
                }
                rows.append(Row(storage: storage, dim: dim, seconds: times[0], memcpySeconds: times[1], lookups: lookups,
                                bytesPerKey: Double(table.bytesHeld) / Double(table.count)))
            }
        }
        return rows
    }
}
