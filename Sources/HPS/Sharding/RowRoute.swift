/// One group lookup's keys routed to the row-wise shards that own them
/// (`RowShard.owner(of:shards:)`), and the way their rows go back.
///
/// A stable counting sort of the batch's n keys by owner: `keys` holds
/// shard 0's keys, then shard 1's, … (`shardStarts`, shards + 1 offsets),
/// each shard's in the batch's order; `origin[p]` is the batch position
/// (run after run) of routed key p. `runs[s]` are shard s's keys as runs of
/// the batch's members (a batch run split over the shards keeps its member),
/// writing the rows to `staging` at the routed key's position. `gather`
/// copies every row from `staging` to its place in the batch's runs.
///
/// Owns its buffers: `deallocate()` once the rows are gathered.
package struct RowRoute {
    /// The routed keys, shard after shard (n).
    package let keys: UnsafeMutableBufferPointer<Int64>
    /// Where each shard's keys start in `keys`, and n at the end (shards + 1).
    package let shardStarts: [Int]
    /// Per routed key, its position in the batch (n).
    package let origin: UnsafeMutableBufferPointer<Int>
    /// Per shard, its runs over `keys` and `staging`.
    package let runs: [[LookupRun]]
    /// The shards' rows, routed key after routed key (n × vecSize).
    package let staging: UnsafeMutableBufferPointer<Float>

    /// Routes `batch`'s host keys to `shards` shards.
    package init(_ batch: CacheBatch, shards: Int, vecSize: Int) {
        let n = batch.keys.count
        let owners = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(1, n))
        defer { owners.deallocate() }
        var counts = [Int](repeating: 0, count: shards + 1)
        for i in 0..<n {
            let owner = RowShard.owner(of: batch.keys[i], shards: shards)
            owners[i] = Int32(truncatingIfNeeded: owner)
            counts[owner + 1] &+= 1
        }
        for s in 0..<shards { counts[s + 1] &+= counts[s] }
        shardStarts = counts
        keys = .allocate(capacity: max(1, n))
        origin = .allocate(capacity: max(1, n))
        staging = .allocate(capacity: max(1, n * vecSize))
        var cursor = Array(counts.dropLast())
        var runs = [[LookupRun]](repeating: [], count: shards)
        // Per shard, the batch run its last run comes from (-1: none yet).
        var lastBatchRun = [Int](repeating: -1, count: shards)
        var flat = 0
        for (r, run) in batch.runs.enumerated() {
            for _ in 0..<run.count {
                let s = Int(owners[flat])
                let p = cursor[s]
                cursor[s] = p &+ 1
                keys[p] = batch.keys[flat]
                origin[p] = flat
                // A shard's keys of one batch run are adjacent (the sort is stable): one run each.
                if lastBatchRun[s] == r {
                    runs[s][runs[s].count - 1].count += 1
                } else {
                    runs[s].append(LookupRun(member: run.member, keys: UnsafePointer(keys.baseAddress! + p), count: 1,
                                             output: staging.baseAddress! + p * vecSize))
                    lastBatchRun[s] = r
                }
                flat &+= 1
            }
        }
        self.runs = runs
    }

    /// Copies each routed key's row from `staging` to its place in `runs` (the batch's runs).
    package func gather(_ runs: UnsafeBufferPointer<LookupRun>, vecSize: Int) {
        let n = shardStarts.last!
        guard n > 0 else { return }
        let destinations = UnsafeMutableBufferPointer<UnsafeMutablePointer<Float>>.allocate(capacity: n)
        defer { destinations.deallocate() }
        var flat = 0
        for run in runs {
            for j in 0..<run.count {
                destinations[flat] = run.output + j * vecSize
                flat &+= 1
            }
        }
        for p in 0..<n {
            destinations[origin[p]].update(from: staging.baseAddress! + p * vecSize, count: vecSize)
        }
    }

    /// Frees the buffers.
    package func deallocate() {
        keys.deallocate()
        origin.deallocate()
        staging.deallocate()
    }
}
