import HPS

/// What each request asks for, of the seed model's tables (table t holds
/// keys [t·vocab, (t+1)·vocab)): `samples` samples of `keysPerSample` random
/// keys per table, so every key is in the model.
struct RequestKind: Sendable {
    /// Samples per request: 1 for one sample, 256 for the seed batch.
    var samples: Int
    /// Number of tables.
    var tables: Int
    /// Keys per table.
    var vocab: Int
    /// Keys per sample and table.
    var keysPerSample: Int
    /// Floats per vector.
    var dim: Int

    /// Keys per request.
    var keyCount: Int { samples * keysPerSample * tables }
    /// Bytes of OUTPUT0 in a right answer.
    var outputBytes: Int { keyCount * dim * 4 }

    /// A request of fresh random keys.
    func request(_ random: inout SplitMix64) -> LoadRequest {
        var keys: [Int64] = []
        keys.reserveCapacity(keyCount)
        for table in 0..<tables {
            let base = Int64(table) * Int64(vocab)
            for _ in 0..<(samples * keysPerSample) { keys.append(base + Int64(random.next() % UInt64(vocab))) }
        }
        return LoadRequest(keys: keys, numKeys: [Int32](repeating: Int32(samples * keysPerSample), count: tables))
    }
}

/// The model's rows, read from its folder, to spot-check answers: one random
/// key of each response is compared with its row.
struct ExpectedRows: Sendable {
    /// For each table: key → row index, and the rows.
    private let tables: [(rows: [Int64: Int], vectors: [Float])]
    let dim: Int

    /// Reads `directory/embeddings/table<t>` for each table.
    init(directory: String, tables: Int, dim: Int) throws {
        self.dim = dim
        self.tables = try (0..<tables).map { table in
            let folder = try SparseModelFolder(path: "\(directory)/embeddings/table\(table)", table: "table\(table)", vecSize: dim)
            let (keys, vectors) = try folder.readAll()
            var rows: [Int64: Int] = [:]
            rows.reserveCapacity(keys.count)
            for (row, key) in keys.enumerated() { rows[key] = row }
            return (rows, vectors)
        }
    }

    /// Whether the vector of key `index` of the request in `response` is its row.
    func check(_ request: LoadRequest, _ response: LoadResponse, index: Int) -> Bool {
        var table = 0, start = 0
        while index >= start + Int(request.numKeys[table]) { start += Int(request.numKeys[table]); table += 1 }
        guard let row = tables[table].rows[request.keys[index]] else { return false }
        for d in 0..<dim where response.float(at: index * dim + d) != tables[table].vectors[row * dim + d] { return false }
        return true
    }
}
