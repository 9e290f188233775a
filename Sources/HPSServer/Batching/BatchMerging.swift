extension ServedModel.Batch {
    /// Several requests' batches as one: each table's keys one request after
    /// another (for a prediction model, so the samples too).
    init(merging batches: [ServedModel.Batch]) {
        let tables = batches[0].tableKeyCounts.count
        var keys: [Int64] = []
        keys.reserveCapacity(batches.reduce(0) { $0 + $1.totalKeys })
        var counts = [Int](repeating: 0, count: tables)
        var starts = [Int](repeating: 0, count: batches.count)
        for table in 0..<tables {
            for (b, batch) in batches.enumerated() {
                let count = batch.tableKeyCounts[table]
                keys += batch.keys[starts[b]..<(starts[b] + count)]
                starts[b] += count
                counts[table] += count
            }
        }
        self.init(keys: keys, tableKeyCounts: counts, samples: batches.reduce(0) { $0 + $1.samples })
    }
}
