import Foundation
import Glibc
import HPS
import HPSRocksDB
import HPSStoreTestSupport
import Testing

#if RocksDB
/// The disk filling up while RocksDB is written: the write fails with an
/// error that names the folder and says the disk is full, a write after it
/// fails as cleanly, the process lives, and every write acknowledged before
/// is there once space is freed.
///
/// The full disk is a 4 MiB tmpfs mounted for the test (it runs as root);
/// where mounting is not permitted, the writer runs under a 4 MiB file size
/// limit instead (`prlimit --fsize`), where RocksDB's write fails with
/// "File too large" through the same path (`HPS_TEST_NO_MOUNT=1` chooses it).
struct DiskFullTests {
    static let limitBytes = 4 << 20

    /// An executable built beside the tests: the writer child process (as
    /// `durableAfterKill` runs it), or `hps`.
    private static func executable(_ name: String) throws -> String {
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "\(name) was not found at \(path); build it with the tests (swift build --build-tests --traits RocksDB)")
        return path
    }

    /// A small disk at `<directory>/disk`: a tmpfs of `limitBytes` if it can
    /// be mounted (then true), else a plain folder (false).
    private static func smallDisk(_ directory: TemporaryDirectory) throws -> (path: String, mounted: Bool) {
        let disk = directory.path + "/disk"
        #expect(mkdir(disk, 0o755) == 0)
        let mounted = getenv("HPS_TEST_NO_MOUNT") == nil
            && (try? run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(limitBytes)", "tmpfs", disk]).status) == 0
        print("DiskFullTests: \(mounted ? "a \(limitBytes)-byte tmpfs" : "mount not permitted; a \(limitBytes)-byte file size limit")")
        return (disk, mounted)
    }

    /// Runs `executable` on the small disk: as it is on a tmpfs, under the file size limit otherwise.
    private static func runLimited(_ executable: String, _ arguments: [String], mounted: Bool,
                                   stdout: Pipe? = nil) throws -> (status: Int32, stderr: String) {
        mounted ? try run(executable, arguments, stdout: stdout)
            : try run("/usr/bin/prlimit", ["--fsize=\(limitBytes)", executable] + arguments, stdout: stdout)
    }

    /// Runs a command to its end; returns its exit status and standard error.
    @discardableResult
    private static func run(_ path: String, _ arguments: [String], stdout: Pipe? = nil) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        if let stdout { process.standardOutput = stdout }
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus, text)
    }

    @Test("a full disk stops the writes with a clear error; the acknowledged ones are all there after space is freed")
    func fullDisk() throws {
        let writer = try Self.executable("hps-rocksdb-writer")
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-full")
        defer { directory.remove() }
        let (disk, mounted) = try Self.smallDisk(directory)
        defer { if mounted { _ = try? Self.run("/usr/bin/umount", [disk]) } }
        let path = disk + "/db"
        let batchSize = 500, vecSize = 128  // 256 KB of vectors per batch
        let arguments = [path, "\(batchSize)", "\(vecSize)"]
        let output = Pipe()
        let (status, stderr) = try Self.runLimited(writer, arguments, mounted: mounted, stdout: output)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let acknowledged = text.split(separator: "\n").compactMap { Int($0) }
        // Ended by the failed write, not by a signal or an abort.
        #expect(status == 1, "writer status \(status): \(stderr)")
        let lines = stderr.split(separator: "\n").map(String.init)
        let first = try #require(lines.first { $0.hasPrefix("hps-rocksdb-writer: ") }, "\(stderr)")
        #expect(first.contains(path))
        #expect(first.contains(mounted ? "because its disk is full" : "File too large"), "\(first)")
        let again = try #require(lines.first { $0.hasPrefix("again: ") }, "\(stderr)")
        #expect(!again.contains("succeeded"), "\(again)")
        #expect(acknowledged.count >= 2, "only \(acknowledged.count) batches fit: \(stderr)")
        #expect(acknowledged == Array(0..<acknowledged.count))

        // Space again; the database opens and holds every acknowledged batch.
        if mounted { try Self.run("/usr/bin/mount", ["-o", "remount,size=\(16 * Self.limitBytes)", disk]) }
        let store = try RocksDBStore(path: path)
        let table = try #require(store.table("hps_et.m.t"))
        let keys = (0..<(acknowledged.count * batchSize)).map(Int64.init)
        let (out, missed) = lookup(table, keys: keys)
        #expect(missed.isEmpty)
        #expect(out == keys.flatMap { [Float](repeating: Float($0), count: vecSize) })
        #expect(table.count >= keys.count)
        // And takes writes again.
        let more = RandomRows(count: 100, vecSize: vecSize, seed: 5, keyRange: 1_000_000...2_000_000)
        try insert(table, keys: more.keys, vectors: more.vectors)
        #expect(bitwiseEqual(lookup(table, keys: more.keys).vectors, more.vectors))
    }

    @Test("hps lookup loading a model into RocksDB on a full disk exits with one sentence naming the folder")
    func loadOnFullDisk() throws {
        let hps = try Self.executable("hps")
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-full")
        defer { directory.remove() }
        let (disk, mounted) = try Self.smallDisk(directory)
        defer { if mounted { _ = try? Self.run("/usr/bin/umount", [disk]) } }
        // 20,000 rows of 128 floats: 10 MB, more than the disk holds.
        let rows = RandomRows(count: 20_000, vecSize: 128, seed: 8)
        try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                _ = try SparseModelFolder.write(path: directory.path + "/model/t0", table: "t0", keys: k, vectors: v, vecSize: 128)
            }
        }
        let database = disk + "/db"
        let json = """
        {
          "supportlonglong": true,
          "volatile_db": {"type": "hash_map", "initial_cache_rate": 0.1},
          "persistent_db": {"type": "rocks_db", "path": "\(database)"},
          "models": [{
            "model": "m", "sparse_files": ["model/t0"], "embedding_table_names": ["t0"],
            "embedding_vecsize_per_table": [128], "maxnum_catfeature_query_per_table_per_sample": [8],
            "default_value_for_each_table": [0.5], "deployed_device_list": [0], "max_batch_size": 512
          }]
        }
        """
        try json.write(toFile: directory.path + "/hps.json", atomically: true, encoding: .utf8)
        let (status, stderr) = try Self.runLimited(hps, ["lookup", "--config", directory.path + "/hps.json", "--model", "m",
                                                         "--table", "t0", "--keys=\(rows.keys[0])"], mounted: mounted)
        #expect(status == 1, "hps lookup status \(status): \(stderr)")
        let lines = stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(stderr)")
        #expect(stderr.contains(database), "\(stderr)")
        #expect(stderr.contains(mounted ? "because its disk is full" : "File too large"), "\(stderr)")
    }
}
#endif
