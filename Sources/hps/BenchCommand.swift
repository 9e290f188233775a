import HPSDemo
import HPSRocksDB
import HPSBenchmarks
import ArgumentParser
import Glibc
import HPS
import HPSCUDA

/// `hps bench`: the CPU benchmarks, each against memcpy of the same bytes in the same run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure lookups against memcpy of the same bytes, loading speed, and memory per key."
    )

    @Option(help: "Timed runs per measurement (the median is reported).")
    var runs = 21
    @Option(help: "Keys of the large table (1M random lookups are made from it).")
    var tableKeys = 4_000_000
    @Option(help: "Random lookups from the large table.")
    var lookups = 1_000_000
    @Option(help: "Keys of each table whose load time and memory are measured (vec sizes 1, 16, 128).")
    var loadKeys = 4_000_000
    @Flag(help: "Skip the load and memory measurements.")
    var skipLoad = false
    @Flag(help: "Print the results as Markdown table rows.")
    var markdown = false
    @Option(help: "cpu (the default) or gpu.")
    var device: String = "cpu"
    @Option(help: "The GPU's ordinal, with --device gpu.")
    var gpu = 0
    @Option(help: "With --device gpu: the kernels' tuning, e.g. block=128,fill-warps=8,index-load=0.8,define=STORE_STREAMING (unnamed settings keep their defaults).")
    var gpuTuning: String?
    @Flag(help: "Also compare the memory-mapped tier's restart with loading the hash map.")
    var tiers = false
    @Option(help: "Keys of the table of the tier comparison (vec size 128).")
    var tierKeys = 10_000_000
    @Flag(help: "Also serve the seed batch entirely from each tier this build has.")
    var seedTiers = false
    @Option(help: "A Redis Cluster's address (host:port,…) for --seed-tiers, --tier-rates and --updates; without it Redis is left out.")
    var redis: String?
    @Flag(help: "Also measure each tier's lookup rate: Redis against redis-benchmark (with --redis), RocksDB cold and warm, and the mapped tier, against the hash map.")
    var tierRates = false
    @Option(help: "Keys of the Redis table of --tier-rates (vec size 128).")
    var redisKeys = 1_000_000
    @Option(help: "Keys per Redis lookup call in --tier-rates.")
    var redisBatch = 10_000
    @Option(help: "num_partitions of the Redis table of --tier-rates.")
    var redisPartitions = 16
    @Option(help: "num_node_connections of the Redis tier in --tier-rates.")
    var redisConnections = 5
    @Option(help: "Rounds of --tier-rates in which the Redis tier and redis-benchmark take turns.")
    var redisRounds = 5
    @Flag(help: "Skip the RocksDB and mapped part of --tier-rates.")
    var skipPersistent = false
    @Flag(help: "Measure online updates instead: 1M key updates of vec size 128 as Kafka messages applied into the hash map on one core, against inserting the same rows and memcpy; with --device gpu, updates of the GPU tables against copying the same bytes to the device.")
    var updates = false
    @Flag(name: .customLong("update-latency"),
          help: "Measure produce-to-visible latency instead: updates through a Kafka-protocol broker (librdkafka's mock cluster) into the hash map while lookups run, against Kafka's delivery alone (Kafka trait).")
    var updateLatency = false
    @Option(name: .customLong("update-rate"), help: "Key updates per second of --update-latency.")
    var updateRate = 10_000
    @Option(name: .customLong("lookup-rate"), help: "Lookups (one sample of 26 keys) per second of --update-latency.")
    var lookupRate = 1000
    @Option(name: .customLong("latency-seconds"), help: "Seconds measured by --update-latency, after a warm-up.")
    var latencySeconds = 20.0
    @Flag(help: "Measure each vector_storage instead: random lookups from the large table at vec 128 and 64 in the hash map on one core, against memcpy of the float32 output and the fp32 table, and the bytes per key it holds; then the bytes per key of a RocksDB database (when built) and of the Redis Cluster of --redis.")
    var storage = false
    @Option(help: "Keys of the tables --storage loads into RocksDB (when built) and the Redis Cluster of --redis, to measure their bytes per key.")
    var footprintKeys = 200_000

    func run() throws {
        try reportingErrors {
            if updateLatency {
                #if Kafka
                guard updateRate >= 100, lookupRate >= 1, latencySeconds > 0 else {
                    throw ValidationError("--update-rate must be at least 100, --lookup-rate at least 1 and --latency-seconds positive")
                }
                try UpdateLatencyBenchmark.run(updatesPerSecond: updateRate, lookupsPerSecond: lookupRate,
                                               seconds: latencySeconds, markdown: markdown)
                return
                #else
                throw ValidationError("--update-latency needs a build with the Kafka package trait")
                #endif
            }
            if gpuTuning != nil && (device != "gpu" || updates) {
                throw ValidationError("--gpu-tuning tunes the lookup kernels of --device gpu; leave it out here")
            }
            if device == "gpu" && updates {
                try gpuUpdateBench()
                return
            }
            if device == "gpu" {
                try gpuBench()
                return
            }
            if updates {
                try UpdateBenchmark.run(tableKeys: 1_000_000, updates: 1_000_000, keysPerMessage: 1000, runs: min(runs, 7),
                                        markdown: markdown, redis: redis)
                return
            }
            guard device == "cpu" else { throw ValidationError("--device must be cpu or gpu, not \(device)") }
            if storage {
                try storageBench()
                return
            }
            if tierRates {
                try tierRatesBench()
                return
            }
            let cores = availableCores
            let threadCounts = cores > 1 ? [1, cores] : [1]
            var rows: [LookupBenchmark.Row] = []
            for threads in threadCounts {
                rows += try LookupBenchmark.seedBatch(model: SeedModel(), threads: threads, runs: runs * 5)
            }
            let (table, keys) = try LookupBenchmark.randomTable(keys: tableKeys, dim: 128, threads: cores)
            for threads in threadCounts {
                rows += LookupBenchmark.randomLookups(table: table, tableKeys: keys, lookups: lookups, threads: threads, runs: runs)
            }
            print(markdown ? "| measurement | threads | median | × memcpy of the same bytes | lookups/s |" : "lookups against memcpy of the same bytes (medians of \(runs)+ rounds; a round runs each measurement of its group once, in turn)")
            if markdown { print("| --- | --- | --- | --- | --- |") }
            for row in rows {
                let rate = row.keys > 0 ? format(Double(row.keys) / row.seconds / 1e6, 1) + " M" : "-"
                if markdown {
                    print("| \(row.name) | \(row.threads) | \(format(row.seconds * 1e3, 3)) ms | \(format(row.ratio, 2)) | \(rate) |")
                } else {
                    print("  \(row.name), \(row.threads) thread(s): \(format(row.seconds * 1e3, 3)) ms, \(format(row.ratio, 2))× memcpy, \(rate) lookups/s")
                }
            }
            if !skipLoad { try loadAndMemory(cores: cores) }
            if tiers { try TierBenchmark.run(keys: tierKeys, lookups: lookups, markdown: markdown) }
            if seedTiers {
                try SeedTierBenchmark.run(redisAddress: redis, rocksDB: isRocksDBBuilt,
                                          runs: runs, markdown: markdown)
            }
        }
    }

    /// `--tier-rates`: each tier's lookup rate, printed as one table at the end.
    func tierRatesBench() throws {
        var rows: [(String, String)] = []
        if let redis {
            rows += try RedisTierBenchmark.run(address: redis, keys: redisKeys, batchKeys: redisBatch, runs: runs,
                                               partitions: redisPartitions, connections: redisConnections,
                                               rounds: redisRounds)
        }
        if !skipPersistent {
            rows += try PersistentTierBenchmark.run(keys: tableKeys, lookups: lookups, runs: runs)
        }
        if markdown {
            print("\n| measurement | figure |")
            print("| --- | --- |")
            for (name, figure) in rows { print("| \(name) | \(figure) |") }
        } else {
            print("tier lookup rates")
            for (name, figure) in rows { print("  \(name): \(figure)") }
        }
    }

    /// `--storage`: the hash map tier in each vector_storage on one core.
    func storageBench() throws {
        let rows = try StorageBenchmark.run(tableKeys: tableKeys, lookups: lookups, runs: runs)
        if markdown {
            print("| vector_storage | vec | median (1 core) | × memcpy of the float32 output | × the fp32 table's lookup rate | bytes per key held | × fp32's bytes |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
        } else {
            print("\(lookups) random lookups from \(tableKeys) keys in the hash map on one core, per vector_storage (medians of \(runs) rounds)")
        }
        for row in rows {
            guard let fp32 = rows.first(where: { $0.dim == row.dim && $0.storage == .fp32 }) else { continue }
            let speed = fp32.seconds / row.seconds, memory = row.bytesPerKey / fp32.bytesPerKey
            if markdown {
                print("| \(row.storage.rawValue) | \(row.dim) | \(format(row.seconds * 1e3, 2)) ms | \(format(row.seconds / row.memcpySeconds, 2)) | \(format(speed, 2)) | \(format(row.bytesPerKey, 1)) | \(format(memory, 3)) |")
            } else {
                print("  \(row.storage.rawValue), vec \(row.dim): \(format(row.seconds * 1e3, 2)) ms, \(format(row.seconds / row.memcpySeconds, 2))× memcpy, \(format(speed, 2))× fp32's rate, \(format(row.bytesPerKey, 1)) bytes per key (\(format(memory, 3))× fp32)")
            }
        }
        let footprint = try StorageFootprint.run(keys: footprintKeys, dims: [128, 64], redis: redis)
        guard !footprint.isEmpty else { return }
        print(markdown ? "\n| tier (\(footprintKeys) random keys) | vector_storage | vec | bytes per key | × fp32's bytes |" : "bytes per key of the tiers outside the heap, \(footprintKeys) random keys")
        if markdown { print("| --- | --- | --- | --- | --- |") }
        for row in footprint {
            guard let fp32 = footprint.first(where: { $0.tier == row.tier && $0.dim == row.dim && $0.storage == .fp32 }) else { continue }
            let share = row.bytesPerKey / fp32.bytesPerKey
            if markdown {
                print("| \(row.tier) | \(row.storage.rawValue) | \(row.dim) | \(format(row.bytesPerKey, 1)) | \(format(share, 3)) |")
            } else {
                print("  \(row.tier), \(row.storage.rawValue), vec \(row.dim): \(format(row.bytesPerKey, 1)) bytes per key (\(format(share, 3))× fp32)")
            }
        }
    }

    /// The GPU benchmarks, against a device-to-device copy in the same run.
    func gpuBench() throws {
        let tuning = try gpuTuning.map { (text) throws(CUDAError) in try GPUTuning(parsing: text) } ?? GPUTuning()
        let (name, rows) = try GPUBenchmark.run(deviceIndex: gpu, runs: max(50, runs * 10), tuning: tuning, tableKeys: tableKeys)
        guard let copy = rows.first else { return }
        print(markdown ? "| measurement (\(name)) | median | GB/s (read + written) | × copy bandwidth | billion lookups/s |" : "GPU benchmarks on \(name), CUDA-event medians")
        if markdown { print("| --- | --- | --- | --- | --- |") }
        for row in rows {
            let share = row.gigabytesPerSecond / copy.gigabytesPerSecond
            let rate = row.keys > 0 ? format(row.billionLookupsPerSecond, 3) : "-"
            if markdown {
                print("| \(row.name) | \(format(row.microseconds, 1)) µs | \(format(row.gigabytesPerSecond, 0)) | \(format(share, 3)) | \(rate) |")
            } else {
                print("  \(row.name): \(format(row.microseconds, 1)) µs, \(format(row.gigabytesPerSecond, 0)) GB/s = \(format(share * 100, 1))% of the copy, \(rate) billion lookups/s")
            }
        }
    }

    /// Online updates into the GPU tables, against copying the same bytes to the device.
    func gpuUpdateBench() throws {
        let (name, rows) = try GPUUpdateBenchmark.run(deviceIndex: gpu)
        print(markdown ? "| online updates into GPU tables (\(name), vec 128, tables of 1M keys) | median per call | key updates/s | × host-to-device copy of the same bytes |"
                       : "online updates into GPU tables on \(name), host wall clock medians")
        if markdown { print("| --- | --- | --- | --- |") }
        for row in rows {
            let rate = "\(format(row.keysPerSecond / 1e6, 2)) M"
            if markdown {
                print("| \(row.name) | \(format(row.microseconds, 1)) µs | \(rate) | \(format(row.microseconds / row.copyMicroseconds, 2)) (copy \(format(row.copyMicroseconds, 1)) µs) |")
            } else {
                print("  \(row.name): \(format(row.microseconds, 1)) µs, \(rate) key updates/s, \(format(row.microseconds / row.copyMicroseconds, 2))× the copy (\(format(row.copyMicroseconds, 1)) µs)")
            }
        }
    }

    /// Loads tables of vec size 1, 16 and 128, each in a fresh process so
    /// that its resident memory is the store's alone.
    func loadAndMemory(cores: Int) throws {
        let directory = try TemporaryDirectory(prefix: "hps-bench-load")
        defer { directory.remove() }
        if markdown {
            print("\n| table | keys | file bytes | load seconds (median of 3 processes) | GB/s | resident bytes per key beyond the vectors |")
            print("| --- | --- | --- | --- | --- | --- |")
        } else {
            print("loading from the page cache (\(cores) thread(s)) and resident memory beyond the vectors")
        }
        for vecSize in [1, 16, 128] {
            let path = "\(directory.path)/vec\(vecSize)"
            try LoadBenchmark.writeTable(path: path, keys: loadKeys, vecSize: vecSize)
            try PageCache.warm(path)
            // Three fresh processes; the one with the median load time is reported.
            var probes: [[Double]] = []
            for _ in 0..<3 {
                let output = try runSelf(["bench-probe", "load", path, "--threads", String(cores)])
                let fields = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
                guard fields.count == 5 else { throw CheckFailure(reason: "the load probe printed \"\(output)\"") }
                probes.append(fields)
            }
            let fields = probes.sorted { $0[3] < $1[3] }[1]
            let gbps = fields[2] / fields[3] / 1e9
            if markdown {
                print("| vec size \(vecSize) | \(Int(fields[0])) | \(Int(fields[2])) | \(format(fields[3], 3)) | \(format(gbps, 2)) | \(format(fields[4], 1)) |")
            } else {
                print("  vec size \(vecSize): \(Int(fields[0])) keys, \(Int(fields[2])) bytes in \(format(fields[3], 3)) s = \(format(gbps, 2)) GB/s; \(format(fields[4], 1)) resident bytes per key beyond the vectors")
            }
            removeTreeAt(path)
        }
    }
}

/// Removes a folder's two model files and the folder.
func removeTreeAt(_ folder: String) {
    unlink("\(folder)/key")
    unlink("\(folder)/emb_vector")
    rmdir(folder)
}

/// Runs this executable with `arguments` and returns what it printed.
func runSelf(_ arguments: [String]) throws -> String {
    try runProgram("/proc/self/exe", arguments, name: "hps")
}

/// Runs `program` (a path, or a name looked up in PATH) with `arguments` and
/// returns what it printed on standard output; its standard error is
/// discarded unless `name` is "hps" (a probe's errors are worth seeing).
/// - Throws: `CheckFailure` naming the program if it cannot start or exits non-zero.
func runProgram(_ program: String, _ arguments: [String], name: String? = nil) throws -> String {
    let name = name ?? program
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else { throw CheckFailure(reason: "cannot create a pipe") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    if name != "hps" { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
    let argv = ([name] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid = pid_t()
    let status = posix_spawnp(&pid, program, &actions, nil, argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    close(pipeEnds[1])
    guard status == 0 else {
        close(pipeEnds[0])
        throw CheckFailure(reason: "cannot start \(name): \(String(cString: strerror(status)))")
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(pipeEnds[0], &buffer, buffer.count)
        if n <= 0 { break }
        output += buffer[0..<n]
    }
    close(pipeEnds[0])
    var exitStatus: Int32 = 0
    waitpid(pid, &exitStatus, 0)
    guard exitStatus == 0 else {
        throw CheckFailure(reason: name == "hps" ? "the probe process failed" : "\(name) \(arguments.prefix(8).joined(separator: " ")) … failed")
    }
    return String(decoding: output, as: UTF8.self)
}
