import HPS

/// What each request asks for, of the seed model's tables (table t holds
/// keys [t·vocab, (t+1)·vocab)): `samples` samples of `keysPerSample` random
/// keys per table, so every key is in the model; either their vectors from
/// the HPS model or one prediction per sample from the prediction model.
struct RequestKind: Sendable {
    /// The kinds `--kind` takes.
    static let names = ["one-sample", "seed-batch", "seed-predict"]

    /// What the answer holds.
    enum Answer: Sendable {
        /// The vectors of the keys (an HPS model: KEYS and NUMKEYS in).
        case vectors
        /// One prediction per sample (a prediction model: KEYS0…KEYS<tables-1> in).
        case predictions
    }

    /// What the answer holds.
    var answer: Answer
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

    /// The kind named `name` (one of `names`): one-sample (one sample's
    /// vectors), seed-batch (`batchSize` samples' vectors) or seed-predict
    /// (`batchSize` samples' predictions); nil for another name.
    init?(name: String, batchSize: Int, tables: Int, vocab: Int, keysPerSample: Int, dim: Int) {
        switch name {
        case "one-sample": (answer, samples) = (.vectors, 1)
        case "seed-batch": (answer, samples) = (.vectors, batchSize)
        case "seed-predict": (answer, samples) = (.predictions, batchSize)
        default: return nil
        }
        self.tables = tables
        self.vocab = vocab
        self.keysPerSample = keysPerSample
        self.dim = dim
    }

    /// The model `hps serve --demo` serves this kind's requests from:
    /// `<tables>_table` for vectors, `<tables>_table_dense` for predictions.
    var demoModel: String {
        switch answer {
        case .vectors: "\(tables)_table"
        case .predictions: "\(tables)_table_dense"
        }
    }

    /// Keys per request.
    var keyCount: Int { samples * keysPerSample * tables }
    /// Bytes of OUTPUT0 in a right answer: FP32 [keys, dim] or [samples, 1].
    var outputBytes: Int {
        switch answer {
        case .vectors: keyCount * dim * 4
        case .predictions: samples * 4
        }
    }

    /// A request of fresh random keys.
    func request(_ random: inout SplitMix64) -> LoadRequest {
        var keys: [Int64] = []
        keys.reserveCapacity(keyCount)
        for table in 0..<tables {
            let base = Int64(table) * Int64(vocab)
            for _ in 0..<(samples * keysPerSample) { keys.append(base + Int64(random.next() % UInt64(vocab))) }
        }
        let perTable = samples * keysPerSample
        let numKeys = [Int32](repeating: Int32(perTable), count: tables)
        let inputs: [LoadInput]
        switch answer {
        case .vectors:
            inputs = [LoadInput(name: "KEYS", shape: [keys.count], values: .int64(keys[...])),
                      LoadInput(name: "NUMKEYS", shape: [tables], values: .int32(numKeys))]
        case .predictions:
            // Table t's keys are already [samples, keysPerSample] in row-major order.
            inputs = (0..<tables).map { table in
                LoadInput(name: "KEYS\(table)", shape: [samples, keysPerSample],
                          values: .int64(keys[(table * perTable)..<((table + 1) * perTable)]))
            }
        }
        return LoadRequest(keys: keys, numKeys: numKeys, inputs: inputs)
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
