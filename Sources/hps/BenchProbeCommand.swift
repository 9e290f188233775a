import HPSBenchmarks
import ArgumentParser
import HPS

/// `hps bench-probe KIND PATH`: one measurement that `hps bench` runs in a
/// fresh process of its own (a cold start, a load into empty memory), and
/// whose figures it reads back from stdout as numbers separated by spaces.
/// Not a command for users: hidden from `hps --help`, and `hps bench`'s own
/// options stay those a user sets.
struct BenchProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-probe",
        abstract: "One measurement of hps bench, in a process of its own (used by hps bench).",
        shouldDisplay: false
    )

    /// What is measured.
    enum Kind: String, ExpressibleByArgument, CaseIterable {
        /// Loading a sparse model folder into the hash map: keys, vec size, file bytes, seconds, resident bytes per key beyond the vectors.
        case load
        /// Restarting the memory-mapped tier on a folder: seconds.
        case mappedRestart = "mapped-restart"
        /// Lookups from the hash map and the mapped tier: seconds of each.
        case tierLookups = "tier-lookups"
        /// Loading a folder into RocksDB, then compacting: seconds of each.
        case rocksdbLoad = "rocksdb-load"
        /// Lookups from RocksDB (cold, warm), the hash map, the mapped tier, memcpy, RocksDB through mmap: seconds of each.
        case persistentLookups = "persistent-lookups"
    }

    @Argument(help: "load, mapped-restart, tier-lookups, rocksdb-load or persistent-lookups.")
    var kind: Kind
    @Argument(help: "The sparse model folder measured.")
    var path: String
    @Option(help: "The RocksDB database (rocksdb-load, persistent-lookups; empty: none).")
    var db = ""
    @Option(help: "Loading threads (load).")
    var threads = 1
    @Option(help: "Random lookups (tier-lookups, persistent-lookups).")
    var lookups = 1_000_000
    @Option(help: "Timed runs (persistent-lookups).")
    var runs = 21

    func run() throws {
        try reportingErrors {
            switch kind {
            case .load:
                let result = try LoadBenchmark.load(path: path, threads: threads)
                print("\(result.keys) \(result.vecSize) \(result.fileBytes) \(result.seconds) \(result.overheadBytesPerKey)")
            case .mappedRestart:
                print(try TierBenchmark.probeRestart(path: path))
            case .tierLookups:
                let (hashMap, mapped) = try TierBenchmark.probeLookups(path: path, lookups: lookups)
                print("\(hashMap) \(mapped)")
            case .rocksdbLoad:
                let (load, compact) = try PersistentTierBenchmark.probeLoad(folder: path, database: db)
                print("\(load) \(compact)")
            case .persistentLookups:
                let seconds = try PersistentTierBenchmark.probeLookups(folder: path, database: db.isEmpty ? nil : db,
                                                                       lookups: lookups, runs: runs)
                print(seconds.map { String($0) }.joined(separator: " "))
            }
        }
    }
}
