import Glibc

/// A HugeCTR sparse model folder: one embedding table as two raw files with
/// no header, `key` (little-endian int64 × n) and `emb_vector`
/// (float32 × n × vecSize), row i belonging to `key[i]`. Other files
/// (`slot_id`, `meta`) are ignored, as HPS does.
public struct SparseModelFolder: Sendable {
    /// The folder.
    public let path: String
    /// The table name used in messages.
    public let table: String
    /// Keys in the folder (rows, counting repeats).
    public let keyCount: Int
    /// Floats per vector.
    public let vecSize: Int

    /// The path of the key file (`key` in the folder).
    public let keyPath: String
    /// The path of the vector file (`emb_vector` in the folder).
    public let vectorPath: String

    /// Opens a folder and checks that its files agree with each other and,
    /// when given, with the configured vec size.
    /// - Throws: `ModelFileError` naming the file and both sizes when they disagree.
    public init(path: String, table: String, vecSize configured: Int?) throws(ModelFileError) {
        try self.init(keyPath: joinPath(path, "key"), vectorPath: joinPath(path, "emb_vector"), folder: path,
                      table: table, vecSize: configured)
    }

    /// Opens a key file and a vector file in HugeCTR's format that need not
    /// sit in one folder under their usual names (`hps publish --keys --vectors`),
    /// with the same checks as a folder's.
    public init(keyPath: String, vectorPath: String, table: String, vecSize configured: Int?) throws(ModelFileError) {
        try self.init(keyPath: keyPath, vectorPath: vectorPath, folder: keyPath, table: table, vecSize: configured)
    }

    private init(keyPath: String, vectorPath: String, folder: String, table: String, vecSize configured: Int?) throws(ModelFileError) {
        self.path = folder
        self.table = table
        self.keyPath = keyPath
        self.vectorPath = vectorPath
        guard fileExists(keyPath) else { throw .missingFile(table: table, path: keyPath) }
        guard fileExists(vectorPath) else { throw .missingFile(table: table, path: vectorPath) }
        let keyBytes = try OpenFile(reading: keyPath).size()
        let vectorBytes = try OpenFile(reading: vectorPath).size()
        guard keyBytes % 8 == 0 else { throw .keyFileSize(path: keyPath, bytes: keyBytes) }
        keyCount = keyBytes / 8
        if let configured {
            guard configured > 0 else { throw .invalidShape(table: table, reason: "vec size \(configured) must be at least 1") }
            if vectorBytes != keyCount * configured * 4 {
                // Whole vectors of another size mean the configuration is wrong;
                // anything else means the file is.
                if keyCount > 0 && vectorBytes % (keyCount * 4) == 0 && vectorBytes > 0 {
                    throw .vecSizeMismatch(table: table, path: vectorPath, configured: configured,
                                           found: vectorBytes / (keyCount * 4))
                }
                throw .vectorFileSize(table: table, path: vectorPath, bytes: vectorBytes, keys: keyCount, vecSize: configured)
            }
            vecSize = configured
        } else {
            guard keyCount > 0, vectorBytes % (keyCount * 4) == 0, vectorBytes > 0 else {
                throw .invalidShape(table: table, reason: "\(vectorPath) is \(vectorBytes) bytes, which is not a whole number of vectors for \(keyCount) keys")
            }
            vecSize = vectorBytes / (keyCount * 4)
        }
    }

    /// Reads the folder in chunks of at most `chunkKeys` rows and hands each
    /// chunk to `body` as (keys, vectors); the buffers are reused between chunks.
    /// - Throws: `ModelFileError.keyOutOfRange` for a key that `keyType` does not admit.
    public func read<E: Error>(chunkKeys: Int = 0, keyType: KeyType = .int64,
                               _ body: (UnsafeBufferPointer<Int64>, UnsafeBufferPointer<Float>) throws(E) -> Void) throws(ReadError<E>) {
        let chunk = chunkKeys > 0 ? chunkKeys : max(1024, (64 << 20) / (vecSize * 4 + 8))
        let keys: OpenFile, vectors: OpenFile
        do {
            keys = try OpenFile(reading: keyPath)
            vectors = try OpenFile(reading: vectorPath)
        } catch { throw .file(error) }
        // Mapped scratch buffers, so that loading leaves no resident heap behind.
        let keyBytes = max(1, min(chunk, keyCount)) * 8, vectorBytes = max(1, min(chunk, keyCount) * vecSize) * 4
        let keyRaw = LargeAllocation.allocate(bytes: keyBytes), vectorRaw = LargeAllocation.allocate(bytes: vectorBytes)
        defer { LargeAllocation.release(keyRaw, bytes: keyBytes); LargeAllocation.release(vectorRaw, bytes: vectorBytes) }
        let keyBuffer = UnsafeMutableBufferPointer(start: keyRaw.bindMemory(to: Int64.self, capacity: keyBytes / 8), count: keyBytes / 8)
        let vectorBuffer = UnsafeMutableBufferPointer(start: vectorRaw.bindMemory(to: Float.self, capacity: vectorBytes / 4), count: vectorBytes / 4)
        var start = 0
        while start < keyCount {
            let n = min(chunk, keyCount - start)
            do {
                try keys.read(into: keyBuffer.baseAddress!, count: n * 8, at: start * 8)
                try vectors.read(into: vectorBuffer.baseAddress!, count: n * vecSize * 4, at: start * vecSize * 4)
            } catch { throw .file(error) }
            if keyType == .int32 {
                for i in 0..<n where !keyType.admits(keyBuffer[i]) {
                    throw .file(.keyOutOfRange(path: keyPath, key: keyBuffer[i], index: start + i))
                }
            }
            do {
                try body(UnsafeBufferPointer(rebasing: keyBuffer[0..<n]),
                         UnsafeBufferPointer(rebasing: vectorBuffer[0..<(n * vecSize)]))
            } catch { throw .body(error) }
            start += n
        }
    }

    /// Reads the whole folder into memory; with `shard`, only the rows of
    /// the keys it owns (read chunk by chunk, so memory holds the shard's
    /// rows and one chunk).
    public func readAll(keyType: KeyType = .int64, shard: RowShard? = nil) throws(ModelFileError) -> (keys: [Int64], vectors: [Float]) {
        var allKeys: [Int64] = [], allVectors: [Float] = []
        let expected = shard.map { keyCount / $0.count + keyCount / (8 * $0.count) + 16 } ?? keyCount
        allKeys.reserveCapacity(expected)
        allVectors.reserveCapacity(expected * vecSize)
        do {
            try read(keyType: keyType) { (keys, vectors) throws(Never) in
                guard let shard, shard.count > 1 else {
                    allKeys.append(contentsOf: keys)
                    allVectors.append(contentsOf: vectors)
                    return
                }
                for (i, key) in keys.enumerated() where shard.owns(key) {
                    allKeys.append(key)
                    allVectors.append(contentsOf: vectors[(i * vecSize)..<((i + 1) * vecSize)])
                }
            }
        } catch {
            if case let .file(error) = error { throw error }
        }
        return (allKeys, allVectors)
    }

    /// Writes a table as a HugeCTR sparse model folder, creating the folder.
    /// - Parameters:
    ///   - keys: (n) keys, written as int64.
    ///   - vectors: (n × vecSize) floats.
    @discardableResult
    public static func write(path: String, table: String, keys: UnsafeBufferPointer<Int64>,
                             vectors: UnsafeBufferPointer<Float>, vecSize: Int) throws(ModelFileError) -> SparseModelFolder {
        guard vecSize > 0, vectors.count == keys.count * vecSize else {
            throw .invalidShape(table: table, reason: "\(vectors.count) floats are not \(keys.count) keys × vec size \(vecSize)")
        }
        let writer = try Writer(path: path, table: table, vecSize: vecSize)
        try writer.append(keys: keys, vectors: vectors)
        return try writer.finish()
    }

    /// Writes a sparse model folder a chunk at a time, for tables larger than memory.
    public final class Writer {
        let path: String, table: String, vecSize: Int
        private let keys: OpenFile, vectors: OpenFile

        /// Creates the folder and empty files.
        public init(path: String, table: String, vecSize: Int) throws(ModelFileError) {
            self.path = path
            self.table = table
            self.vecSize = vecSize
            try makeDirectories(path)
            keys = try OpenFile(writing: joinPath(path, "key"))
            vectors = try OpenFile(writing: joinPath(path, "emb_vector"))
        }

        /// Appends (n) keys and their (n × vecSize) floats.
        public func append(keys k: UnsafeBufferPointer<Int64>, vectors v: UnsafeBufferPointer<Float>) throws(ModelFileError) {
            guard v.count == k.count * vecSize else {
                throw .invalidShape(table: table, reason: "\(v.count) floats are not \(k.count) keys × vec size \(vecSize)")
            }
            guard let kb = k.baseAddress, let vb = v.baseAddress else { return }
            try keys.write(kb, count: k.count * 8)
            try vectors.write(vb, count: v.count * 4)
        }

        /// Appends `count` rows made by `fill` a chunk at a time:
        /// `fill(start, keys, vectors)` fills `keys.count` keys and their
        /// vectors for rows `start…`.
        public func appendGenerated(count: Int,
                                    _ fill: (Int, UnsafeMutableBufferPointer<Int64>, UnsafeMutableBufferPointer<Float>) -> Void) throws(ModelFileError) {
            let chunk = max(1024, (32 << 20) / (vecSize * 4 + 8))
            var keyBuffer = [Int64](repeating: 0, count: chunk)
            var vectorBuffer = [Float](repeating: 0, count: chunk * vecSize)
            var start = 0
            while start < count {
                let n = min(chunk, count - start)
                try keyBuffer.withUnsafeMutableBufferPointer { (k) throws(ModelFileError) in
                    try vectorBuffer.withUnsafeMutableBufferPointer { (v) throws(ModelFileError) in
                        let keys = UnsafeMutableBufferPointer(rebasing: k[0..<n])
                        let vectors = UnsafeMutableBufferPointer(rebasing: v[0..<(n * vecSize)])
                        fill(start, keys, vectors)
                        try append(keys: UnsafeBufferPointer(keys), vectors: UnsafeBufferPointer(vectors))
                    }
                }
                start += n
            }
        }

        /// Flushes the files and opens the result.
        public func finish() throws(ModelFileError) -> SparseModelFolder {
            try keys.sync()
            try vectors.sync()
            return try SparseModelFolder(path: path, table: table, vecSize: vecSize)
        }
    }
}

/// A failure while reading a folder in chunks: of the files, or of the caller's body.
public enum ReadError<BodyError: Error>: Error {
    /// The files could not be read, or a key did not fit.
    case file(ModelFileError)
    /// The body threw.
    case body(BodyError)
}
