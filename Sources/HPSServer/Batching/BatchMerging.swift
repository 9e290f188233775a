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
}
