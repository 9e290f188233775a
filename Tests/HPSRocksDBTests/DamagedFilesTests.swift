import Foundation
import Glibc
import HPS
import HPSRocksDB
import HPSStoreTestSupport
import Testing

#if RocksDB
/// A RocksDB folder damaged on disk: a table file with a garbled block or cut
/// short. Each ends in a clear error naming the folder, or in lookups that
/// answer the unreadable keys as misses (from the tiers below) and count
/// them, never a crash or a wrong vector.
struct DamagedFilesTests {
    static let rows = RandomRows(count: 20_000, vecSize: 16, seed: 21)

    /// A database at `<directory>/db` whose table `t` is written to one
    /// compacted table file; returns the table file's path.
    private static func writeDatabase(_ path: String) throws -> String {
        let store = try RocksDBStore(path: path)
        let table = try store.createTable("t", vecSize: 16, members: 1, expectedKeys: rows.keys.count)
        try insert(table, keys: rows.keys, vectors: rows.vectors)
        try #require(table as? RocksDBTable).compact()
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".sst") }
        // The default family's records and the table's rows: the largest file holds the rows.
        let sizes = try files.map { (try FileManager.default.attributesOfItem(atPath: path + "/" + $0)[.size] as! Int, $0) }
        return path + "/" + sizes.max { $0.0 < $1.0 }!.1
    }

    /// Looks every key up; expects each row served to equal the one written,
    /// and returns how many were missed.
    private static func lookupAll(_ table: any EmbeddingStoreTable, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        let (out, missed) = lookup(table, keys: rows.keys, defaults: [-1])
        let missedSet = Set(missed)
        var wrong = 0
        for i in 0..<rows.keys.count {
            let row = Array(out[(i * 16)..<((i + 1) * 16)])
            if missedSet.contains(i) {
                if row != [Float](repeating: -1, count: 16) { wrong += 1 }
            } else if !bitwiseEqual(row, rows.row(i)) {
                wrong += 1
            }
        }
        #expect(wrong == 0, "\(wrong) rows neither their written vector nor the default", sourceLocation: sourceLocation)
        return missed.count
    }

    @Test("a garbled block of a table file: its keys miss and are counted, every other key is served exactly")
    func garbledBlock() throws {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-damaged")
        defer { directory.remove() }
        let path = directory.path + "/db"
        let file = try Self.writeDatabase(path)
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        let handle = try #require(FileHandle(forUpdatingAtPath: file))
        try handle.seek(toOffset: UInt64(size / 3))
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 64))
        try handle.close()
        let store = try RocksDBStore(path: path)
        let table = try #require(store.table("t"))
        let missed = Self.lookupAll(table)

        #expect(missed > 0 && missed < Self.rows.keys.count)
        #expect(store.faults?.count == missed)
        let message = try #require(store.faults?.messages.first)
        #expect(message.contains("table t: RocksDB could not read keys at \(path)") && message.contains("Corruption"), "\(message)")
    }

    @Test("a table file cut short before the database opens: opening it says the folder is corrupt and names the file")
    func truncatedFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-damaged")
        defer { directory.remove() }
        let path = directory.path + "/db"
        let file = try Self.writeDatabase(path)
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        #expect(truncate(file, off_t(size / 2)) == 0)
        var thrown: RocksDBError? = nil
        do {
            _ = try RocksDBStore(path: path)
        } catch {
            thrown = error
        }
        guard case let .corrupt(corruptPath, message)? = thrown else {
            Issue.record("opening a database with a table file cut short: \(String(describing: thrown))")
            return
        }
        #expect(corruptPath == path)
        #expect(message.contains(file), "\(message)")
        #expect(thrown!.description.contains("restore it or remove the folder"))
    }

    @Test("a table file cut short while the database is open: its unreadable keys miss and are counted, the process lives")
    func truncatedWhileOpen() throws {
        let directory = try TemporaryDirectory(prefix: "hps-rocksdb-damaged")
        defer { directory.remove() }
        let path = directory.path + "/db"
        let file = try Self.writeDatabase(path)
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        let store = try RocksDBStore(path: path)
        let table = try #require(store.table("t"))
        #expect(truncate(file, off_t(size / 2)) == 0)
        let missed = Self.lookupAll(table)
        #expect(missed > 0 && missed < Self.rows.keys.count)
        #expect(store.faults?.count == missed)
        #expect(store.faults?.messages.first?.contains(file) == true, "\(store.faults?.messages ?? [])")
    }
}
#endif
