import Foundation
import Glibc
import HPS
import HPSMapped
import HPSStoreTestSupport
import Testing

/// Model files changed under the mapped tier while it serves them: each ends
/// in keys answered as misses (from the tiers below) and one sentence in the
/// store's faults, never a crash or another file's vector.
struct ChangedFilesTests {
    /// A table of two members, `a` (2,000 rows) and `b` (500 rows), vectors of 8 floats.
    private final class Served: Sendable {
        let directory: TemporaryDirectory
        let store = MappedStore()
        let table: MappedTable
        let a: RandomRows
        let b: RandomRows
        let folders: [SparseModelFolder]

        init() throws {
            let directory = try TemporaryDirectory(prefix: "hps-mapped-changed")
            self.directory = directory
            let a = RandomRows(count: 2000, vecSize: 8, seed: 11), b = RandomRows(count: 500, vecSize: 8, seed: 12)
            self.a = a
            self.b = b
            var folders: [SparseModelFolder] = []
            for (rows, name) in [(a, "a"), (b, "b")] {
                folders.append(try rows.keys.withUnsafeBufferPointer { k in
                    try rows.vectors.withUnsafeBufferPointer { v in
                        try SparseModelFolder.write(path: directory.path + "/" + name, table: name, keys: k, vectors: v, vecSize: 8)
                    }
                })
            }
            self.folders = folders
            table = try store.attachTable("hps_et.m.ab", folders: folders)
        }

        /// Member 0's keys, looked up with default -3; expects every row served or every key missed.
        func expectMemberA(served: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
            let (out, missed) = lookup(table, member: 0, keys: a.keys, defaults: [-3, -4], parallelism: 2)
            if served {
                #expect(missed.isEmpty, sourceLocation: sourceLocation)
                #expect(bitwiseEqual(out, a.vectors), sourceLocation: sourceLocation)
            } else {
                #expect(missed == Array(0..<a.keys.count), sourceLocation: sourceLocation)
                #expect(out == [Float](repeating: -3, count: out.count), sourceLocation: sourceLocation)
            }
        }

        /// Member 1 is untouched by what happens to member 0's files.
        func expectMemberBServed(sourceLocation: SourceLocation = #_sourceLocation) {
            let (out, missed) = lookup(table, member: 1, keys: b.keys)
            #expect(missed.isEmpty && bitwiseEqual(out, b.vectors), sourceLocation: sourceLocation)
        }
    }

    @Test("a vector or key file truncated while served: the process lives, the member's keys miss, one fault says which file",
          arguments: ["emb_vector", "key"])
    func truncated(file: String) throws {
        let served = try Served()
        defer { served.directory.remove() }
        served.expectMemberA(served: true)
        let path = served.folders[0].path + "/" + file
        #expect(truncate(path, 4096) == 0)
        // Reads past the new end fault (SIGBUS); the handler turns the mapping into zeros.
        served.expectMemberA(served: false)
        served.expectMemberA(served: false)
        served.expectMemberBServed()
        let faults = try #require(served.store.faults)
        #expect(faults.count == 1)
        #expect(faults.messages.count == 1)
        #expect(faults.messages.first?.contains("\(path) shrank while it was served") == true, "\(faults.messages)")
        #expect(faults.takeUnreported().count == 1)
        #expect(faults.takeUnreported().isEmpty)
    }

    @Test("a file truncated to nothing while served, looked up from several threads at once")
    func truncatedToNothingUnderLoad() async throws {
        let served = try Served()
        defer { served.directory.remove() }
        #expect(truncate(served.folders[0].vectorPath, 0) == 0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { served.expectMemberA(served: false) } }
        }
        served.expectMemberBServed()
        #expect(served.store.faults?.messages.count == 1)
    }

    @Test("a vector file written in place is found by the file check: the member's keys miss from then on")
    func writtenInPlace() throws {
        let served = try Served()
        defer { served.directory.remove() }
        served.store.checkFiles()
        #expect(served.store.faults?.messages == [])
        // Same size, new bytes, as a trainer rewriting the file would leave it.
        let handle = try #require(FileHandle(forWritingAtPath: served.folders[0].vectorPath))
        try handle.write(contentsOf: Data(repeating: 0x41, count: 64))
        try handle.close()
        served.store.checkFiles()
        served.expectMemberA(served: false)
        served.expectMemberBServed()
        let messages = try #require(served.store.faults?.messages)
        #expect(messages.count == 1 && messages[0].contains("written in place"), "\(messages)")
    }

    @Test("a vector file replaced by a rename keeps the mapped version served, and says so once")
    func replacedByRename() throws {
        let served = try Served()
        defer { served.directory.remove() }
        let path = served.folders[0].vectorPath
        let other = RandomRows(count: 2000, vecSize: 8, seed: 99)
        try other.vectors.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path + ".new")) }
        #expect(rename(path + ".new", path) == 0)
        served.store.checkFiles()
        served.store.checkFiles()
        served.expectMemberA(served: true)
        let messages = try #require(served.store.faults?.messages)
        #expect(messages.count == 1 && messages[0].contains("\(path) was replaced"), "\(messages)")
        #expect(served.store.faults?.count == 1)
    }
}
