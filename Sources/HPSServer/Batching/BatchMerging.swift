extension ServedModel.Batch {
    /// Several requests' batches as one: each table's keys one request after
    /// another (for a prediction model, so the samples too).
    init(merging batches: [ServedModel.Batch]) {
        let tables = batches[0].keysPerTable.count
        var keysPerTable = [[Int64]](repeating: [], count: tables)
        for table in 0..<tables {
            keysPerTable[table].reserveCapacity(batches.reduce(0) { $0 + $1.keysPerTable[table].count })
            for batch in batches { keysPerTable[table] += batch.keysPerTable[table] }
        }
        self.init(keysPerTable: keysPerTable, totalKeys: batches.reduce(0) { $0 + $1.totalKeys },
                  samples: batches.reduce(0) { $0 + $1.samples })
    }

    /// Splits the output of this merged batch back into each request's output.
    /// - Parameters:
    ///   - output: an HPS model's vectors, table after table (each table's
    ///     rows request after request), or a prediction model's predictions,
    ///     sample after sample.
    ///   - parts: the batches merged, in order.
    ///   - vecSizes: each table's vec size for an HPS model; nil for a prediction model.
    /// - Returns: for each part, the floats its own lookup would return.
    func split(_ output: [Float], into parts: [ServedModel.Batch], vecSizes: [Int]?) -> [[Float]] {
        guard let vecSizes else {
            var start = 0
            return parts.map { part in
                defer { start += part.samples }
                return Array(output[start..<(start + part.samples)])
            }
        }
        var results = parts.map { part in
            var floats: [Float] = []
            floats.reserveCapacity(zip(part.keysPerTable, vecSizes).reduce(0) { $0 + $1.0.count * $1.1 })
            return floats
        }
        output.withUnsafeBufferPointer { output in
            var offset = 0
            for (table, vecSize) in vecSizes.enumerated() {
                for (i, part) in parts.enumerated() {
                    let count = part.keysPerTable[table].count * vecSize
                    results[i].append(contentsOf: UnsafeBufferPointer(rebasing: output[offset..<(offset + count)]))
                    offset += count
                }
            }
        }
        return results
    }
}
