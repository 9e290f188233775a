import Foundation
import HPSStoreTestSupport
import Testing

@testable import HPS

struct SparseModelFolderTests {
    /// Writes raw bytes to `path`.
    private func writeBytes<T>(_ values: [T], to path: String) throws {
        let data = values.withUnsafeBytes { Data($0) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test("a written folder has int64 keys and float32 vectors, byte for byte")
    func writeExactBytes() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let table = RandomTable(count: 1000, vecSize: 16, seed: 1)
        let path = joinPath(directory.path, "t0")
        let folder = try table.write(to: path)

        #expect(folder.keyCount == 1000)
        #expect(folder.vecSize == 16)
        #expect(try fileSize(joinPath(path, "key")) == 8_000)
        #expect(try fileSize(joinPath(path, "emb_vector")) == 64_000)
        let keyBytes = try Data(contentsOf: URL(fileURLWithPath: joinPath(path, "key")))
        let vectorBytes = try Data(contentsOf: URL(fileURLWithPath: joinPath(path, "emb_vector")))
        #expect(keyBytes == table.keys.withUnsafeBytes { Data($0) })
        #expect(vectorBytes == table.vectors.withUnsafeBytes { Data($0) })
    }

    @Test("a folder reads back the keys and vectors it was written with")
    func readBack() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let table = RandomTable(count: 1000, vecSize: 16, seed: 2)
        let path = joinPath(directory.path, "t0")
        try table.write(to: path)

        let folder = try SparseModelFolder(path: path, table: "t0", vecSize: 16)
        let (keys, vectors) = try folder.readAll()
        #expect(keys == table.keys)
        #expect(bitwiseEqual(vectors, table.vectors))
    }

    @Test("reading in small chunks gives the same rows as one read")
    func chunkedRead() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let table = RandomTable(count: 1000, vecSize: 3, seed: 3)
        let path = joinPath(directory.path, "t0")
        try table.write(to: path)

        let folder = try SparseModelFolder(path: path, table: "t0", vecSize: 3)
        var keys: [Int64] = [], vectors: [Float] = [], chunks = 0
        try folder.read(chunkKeys: 77) { (k, v) throws(Never) in
            #expect(k.count <= 77)
            #expect(v.count == k.count * 3)
            keys.append(contentsOf: k)
            vectors.append(contentsOf: v)
            chunks += 1
        }
        #expect(chunks == (1000 + 76) / 77)
        #expect(keys == table.keys)
        #expect(bitwiseEqual(vectors, table.vectors))
    }

    @Test("without a configured vec size, the folder infers it from the file sizes")
    func inferredVecSize() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try RandomTable(count: 10, vecSize: 5, seed: 4).write(to: path)
        let folder = try SparseModelFolder(path: path, table: "t0", vecSize: nil)
        #expect(folder.vecSize == 5)
        #expect(folder.keyCount == 10)
    }

    @Test("int32 key type rejects a key of 2^32 or more, naming the file and the key")
    func int32RejectsLargeKey() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        let big: Int64 = 1 << 32
        let table = RandomTable(keys: [1, 2, Int64(UInt32.max), big, 5], vecSize: 2, seed: 5)
        let folder = try table.write(to: path)

        #expect(throws: ModelFileError.keyOutOfRange(path: folder.keyPath, key: big, index: 3)) {
            try folder.readAll(keyType: .int32)
        }
        do {
            _ = try folder.readAll(keyType: .int32)
        } catch {
            #expect(error.description.contains(folder.keyPath))
            #expect(error.description.contains("4294967296"))
        }
        // The same folder is fine for int64 keys.
        #expect(try folder.readAll(keyType: .int64).keys == table.keys)
    }

    @Test("int32 key type rejects a negative key, naming the file and the key")
    func int32RejectsNegativeKey() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        let folder = try RandomTable(keys: [0, -7, 3], vecSize: 2, seed: 6).write(to: path)

        #expect(throws: ModelFileError.keyOutOfRange(path: folder.keyPath, key: -7, index: 1)) {
            try folder.readAll(keyType: .int32)
        }
        #expect(!KeyType.int32.admits(-1))
        #expect(!KeyType.int32.admits(1 << 32))
        #expect(KeyType.int32.admits(Int64(UInt32.max)))
        #expect(KeyType.int64.admits(-1))
    }

    @Test("a folder without a key file is reported as missing")
    func missingKeyFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try RandomTable(count: 4, vecSize: 2, seed: 7).write(to: path)
        try FileManager.default.removeItem(atPath: joinPath(path, "key"))

        let error = #expect(throws: ModelFileError.self) {
            try SparseModelFolder(path: path, table: "t0", vecSize: 2)
        }
        #expect(error == .missingFile(table: "t0", path: joinPath(path, "key")))
        #expect(error?.description.contains("does not exist") == true)
    }

    @Test("a folder without an emb_vector file is reported as missing")
    func missingVectorFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try RandomTable(count: 4, vecSize: 2, seed: 8).write(to: path)
        try FileManager.default.removeItem(atPath: joinPath(path, "emb_vector"))

        #expect(throws: ModelFileError.missingFile(table: "t0", path: joinPath(path, "emb_vector"))) {
            try SparseModelFolder(path: path, table: "t0", vecSize: 2)
        }
    }

    @Test("an emb_vector of the wrong size names both sizes")
    func vectorFileSize() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try writeBytes([Int64](0..<10), to: joinPath(path, "key"))
        // 10 keys × 4 floats would be 160 bytes; 158 is not a whole number of vectors.
        try writeBytes([UInt8](repeating: 0, count: 158), to: joinPath(path, "emb_vector"))

        let error = #expect(throws: ModelFileError.self) {
            try SparseModelFolder(path: path, table: "t0", vecSize: 4)
        }
        #expect(error == .vectorFileSize(table: "t0", path: joinPath(path, "emb_vector"), bytes: 158, keys: 10, vecSize: 4))
        let text = error?.description ?? ""
        #expect(text.contains("158"))
        #expect(text.contains("160"))
    }

    @Test("a key file that is not whole int64 keys is rejected")
    func keyFileSize() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try writeBytes([UInt8](repeating: 0, count: 12), to: joinPath(path, "key"))
        try writeBytes([Float](repeating: 0, count: 4), to: joinPath(path, "emb_vector"))

        #expect(throws: ModelFileError.keyFileSize(path: joinPath(path, "key"), bytes: 12)) {
            try SparseModelFolder(path: path, table: "t0", vecSize: 4)
        }
    }

    @Test("whole vectors of another vec size are a vec size mismatch")
    func vecSizeMismatch() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let path = joinPath(directory.path, "t0")
        try RandomTable(count: 10, vecSize: 8, seed: 9).write(to: path)

        let error = #expect(throws: ModelFileError.self) {
            try SparseModelFolder(path: path, table: "t0", vecSize: 16)
        }
        #expect(error == .vecSizeMismatch(table: "t0", path: joinPath(path, "emb_vector"), configured: 16, found: 8))
        #expect(error?.description.contains("embedding_vecsize_per_table = 16") == true)
    }

    @Test("writing vectors that are not keys × vec size is refused")
    func writeShapeMismatch() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        let keys: [Int64] = [1, 2, 3]
        let vectors = [Float](repeating: 1, count: 7)
        #expect(throws: ModelFileError.self) {
            try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in
                    try SparseModelFolder.write(path: joinPath(directory.path, "bad"), table: "bad", keys: k, vectors: v, vecSize: 2)
                }
            }
        }
    }

    @Test("duplicate keys in a folder: the last row wins and a warning counts them")
    func duplicateKeysLastRowWins() throws {
        let directory = try TemporaryDirectory(prefix: "hps-folder")
        defer { directory.remove() }
        // Keys 0..<100, then 0..<37 again with new vectors: 37 duplicates.
        let keys = (0..<100).map(Int64.init) + (0..<37).map(Int64.init)
        let table = RandomTable(keys: keys, vecSize: 4, seed: 10)
        try table.write(to: joinPath(directory.path, "t0"))
        let server = try TestConfiguration.server(
            TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 4, maxPerSample: 100)]),
            in: directory.path)

        let session = try server.session(model: "m")
        let result = try session.lookup(table: 0, keys: (0..<100).map(Int64.init))
        #expect(bitwiseEqual(result, expectedRows((0..<100).map(Int64.init), in: table.reference, vecSize: 4)))
        // Key 5's answer is row 105 (its second row), not row 5.
        #expect(Array(result[20..<24]) == Array(table.row(105)))
        let warning = server.warnings.first { $0.contains("duplicate") }
        #expect(warning?.contains("37 duplicate key(s)") == true, "warnings: \(server.warnings)")
        #expect(server.loadReports.first?.replaced == 37)
        #expect(server.loadReports.first?.loaded == 100)
    }
}
