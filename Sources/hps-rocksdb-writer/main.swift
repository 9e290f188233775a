// A child process for the RocksDB durability and disk-full tests:
//   hps-rocksdb-writer <database path> <batch size> <vec size>
// inserts batch after batch into table "hps_et.m.t" (batch b holds keys
// b × size ..< (b + 1) × size, key k's vector all Float(k)), and prints each
// batch's number once its insert has returned, until it is killed or an
// insert fails: then it prints the error, tries the same insert once more
// (a write after a failed one must fail as cleanly), prints that error as
// `again: …` and exits with status 1.
import Glibc
#if RocksDB
import HPS
import HPSRocksDB

let arguments = CommandLine.arguments
guard arguments.count == 4, let batchSize = Int(arguments[2]), let vecSize = Int(arguments[3]) else {
    say("usage: hps-rocksdb-writer <database path> <batch size> <vec size>\n", to: 2)
    exit(2)
}
// Past a file size limit (`ulimit -f`), a write fails with EFBIG instead of ending the process.
signal(SIGXFSZ, SIG_IGN)
do {
    let store = try RocksDBStore(path: arguments[1], numThreads: 2, maxBatchSize: 4096)
    let table = try store.createTable("hps_et.m.t", vecSize: vecSize, members: 1, expectedKeys: 0)
    var keys = [Int64](repeating: 0, count: batchSize)
    var vectors = [Float](repeating: 0, count: batchSize * vecSize)
    var batch = 0
    while true {
        for i in 0..<batchSize {
            let key = Int64(batch * batchSize + i)
            keys[i] = key
            for j in 0..<vecSize { vectors[i * vecSize + j] = Float(key) }
        }
        func insertBatch() throws {
            _ = try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in try table.insert(member: 0, keys: k, vectors: v, parallelism: 1) }
            }
        }
        do {
            try insertBatch()
        } catch {
            say("hps-rocksdb-writer: \(error)\n", to: 2)
            do {
                try insertBatch()
                say("again: the insert succeeded\n", to: 2)
            } catch {
                say("again: \(error)\n", to: 2)
            }
            exit(1)
        }
        // Unbuffered: the line is out as soon as the insert has returned.
        say("\(batch)\n", to: 1)
        batch += 1
    }
} catch {
    say("hps-rocksdb-writer: \(error)\n", to: 2)
    exit(1)
}
#else
say("hps-rocksdb-writer: this build has no RocksDB tier (build with --traits RocksDB)\n", to: 2)
exit(2)
#endif

/// Writes a line straight to a file descriptor, with no buffering.
func say(_ text: String, to fd: Int32) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
}
