/// Indices grouped by partition with a stable counting sort, so that a batch
/// takes each partition's lock, or sends each partition's request, once: the
/// hash map's inserts and the Redis tier's reads and writes.
package enum PartitionGrouping {
    /// Writes into `order` the indices `0..<order.count` grouped by partition,
    /// in index order within each, and returns where each partition's indices
    /// start in `order` (`partitions + 1` entries; the last is the count).
    /// - Parameter partitionOf: the partition (`0..<partitions`) of index `i`,
    ///   called once per index.
    package static func group(partitions: Int, into order: UnsafeMutableBufferPointer<Int32>,
                              partitionOf: (Int) -> Int) -> [Int] {
        let n = order.count
        var starts = [Int](repeating: 0, count: partitions + 1)
        return LargeAllocation.withScratch(Int32.self, count: n) { parts in
            for i in 0..<n {
                let p = partitionOf(i)
                parts[i] = Int32(p)
                starts[p + 1] += 1
            }
            for p in 0..<partitions { starts[p + 1] += starts[p] }
            var fill = starts
            for i in 0..<n {
                let p = Int(parts[i])
                order[fill[p]] = Int32(i)
                fill[p] += 1
            }
            return starts
        }
    }

    /// `group(partitions:into:partitionOf:)` into a new array: the order and the starts.
    package static func group(count n: Int, partitions: Int, partitionOf: (Int) -> Int) -> (order: [Int32], starts: [Int]) {
        var starts: [Int] = []
        let order = [Int32](unsafeUninitializedCapacity: n) { buffer, initialized in
            starts = group(partitions: partitions, into: buffer, partitionOf: partitionOf)
            initialized = n
        }
        return (order, starts)
    }
}
