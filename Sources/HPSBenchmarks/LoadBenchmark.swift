import HPS
import HPSDemo
/// Loading a sparse model folder into the hash-map store, and the memory the
/// store holds beyond the vectors, as `hps bench` measures them.
package enum LoadBenchmark {
    /// What one load measured.
    package struct Result: Sendable {
        /// Keys loaded.
        package var keys: Int
        /// Floats per vector.
        package var vecSize: Int
        /// Bytes of the folder's files.
        package var fileBytes: Int
        /// Seconds to load.
        package var seconds: Double
        /// Resident bytes gained by loading, less the vectors' own bytes, per key.
        package var overheadBytesPerKey: Double

        /// Gigabytes (10⁹ bytes) of files loaded per second.
        package var gigabytesPerSecond: Double { Double(fileBytes) / seconds / 1e9 }
    }

    /// Writes a folder of `keys` random keys of `vecSize` floats.
    package static func writeTable(path: String, keys: Int, vecSize: Int) throws {
        let writer = try SparseModelFolder.Writer(path: path, table: "bench", vecSize: vecSize)
        var random = SplitMix64(seed: 11)
        try writer.appendGenerated(count: keys) { _, keys, vectors in
            for i in keys.indices { keys[i] = Int64(bitPattern: random.next() >> 1) }
            for i in vectors.indices { vectors[i] = Float(i & 4095) * 0.001 }
        }
        _ = try writer.finish()
    }

    /// Loads the folder at `path` into a fresh store, as a server does, and
    /// measures the time and the resident memory it adds.
    package static func load(path: String, threads: Int) throws -> Result {
        let folder = try SparseModelFolder(path: path, table: "bench", vecSize: nil)
        let before = ResidentMemory.bytes()
        let store = HashMapStore(partitions: min(16, availableCores))
        let table = try store.createTable("hps_et.bench.load", vecSize: folder.vecSize, members: 1, expectedKeys: folder.keyCount)
        let report = try HierarchicalParameterServer.load(folder, into: table, member: 0, model: "bench", rate: 1,
                                                          keyType: .int64, parallelism: threads)
        let after = ResidentMemory.bytes()
        let overhead = Double(after - before - report.loaded * folder.vecSize * 4) / Double(max(1, report.loaded))
        return withExtendedLifetime(store) {
            Result(keys: report.loaded, vecSize: folder.vecSize, fileBytes: report.bytes, seconds: report.seconds,
                   overheadBytesPerKey: overhead)
        }
    }
}
