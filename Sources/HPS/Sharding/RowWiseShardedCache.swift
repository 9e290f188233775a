import Dispatch

/// One fusion group's L1 cache split row-wise over shards (`gpu_sharding:
/// row_wise`): shard s is a cache (a GPU static table, dynamic or uvm cache)
/// holding the rows of the keys `RowShard(index: s, count:)` owns, on its
/// own GPU; the group's tiers below are shared.
///
/// A lookup routes the batch's keys to their owners on the host (a stable
/// counting sort: each shard gets its keys in the batch's order, as runs of
/// the batch's members), asks every shard that got keys (at once, on
/// threads of their own, when the shards are on several GPUs), and copies
/// each row from the shards' staging into its place in the caller's runs.
/// Every key is asked of its owner alone, so each shard's hits, misses and
/// statistics are those of its keys, and their sums are the group's.
///
/// Shapes: a batch of n keys takes n × 8 bytes of routed keys and
/// n × vecSize floats of staging, allocated per lookup.
///
/// Host keys into host memory only: keys or a destination in device memory
/// are refused with one sentence (the routing runs on the host).
///
/// Thread safety: lookups and updates may be called concurrently; each
/// shard serializes what it must.
package final class RowWiseShardedCache: EmbeddingCache {
    /// The shards, shard s owning the keys of `RowShard(index: s, count: shards.count)`.
    package let shards: [any EmbeddingCache]
    package let vecSize: Int
    package let memberCount: Int
    /// The group's name in errors (`hps_et.<model>.<group>`).
    let name: String
    /// Whether the shards live on more than one GPU (their lookups then run at once).
    let spansDevices: Bool

    /// A group over `shards` (at least one), all of one vec size and member count.
    package init(shards: [any EmbeddingCache], name: String) {
        precondition(!shards.isEmpty, "a sharded group has at least one shard")
        precondition(shards.allSatisfy { $0.vecSize == shards[0].vecSize && $0.memberCount == shards[0].memberCount },
                     "the shards of a group have one vec size and member count")
        self.shards = shards
        self.name = name
        vecSize = shards[0].vecSize
        memberCount = shards[0].memberCount
        spansDevices = Set(shards.map(\.device)).count > 1
    }

    /// The shards' kind (`gpu_static`, `gpu_dynamic`, `gpu_uvm`).
    package var kind: String { shards[0].kind }

    /// The shards' GPU when they share one, else nil.
    package var device: Int? { spansDevices ? nil : shards[0].device }

    /// The shards' statistics, summed.
    package var statistics: CacheStatistics {
        var total = CacheStatistics()
        for shard in shards { total.add(shard.statistics) }
        return total
    }

    /// Every shard's background work.
    package var backgroundWork: [any BackgroundWork] { shards.flatMap(\.backgroundWork) }

    package func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                       hits: inout TierHits) throws(LookupError) {
        if batch.device != nil || batch.deviceKeys != nil { throw .destination(reason: deviceMemoryRefusal) }
        let n = batch.keys.count
        guard n > 0 else { return }
        if shards.count == 1 {
            try shards[0].lookup(batch, below: below, defaults: defaults, hits: &hits)
            return
        }
        let route = RowRoute(batch, shards: shards.count, vecSize: vecSize)
        defer { route.deallocate() }
        let tiers = hits.answered.count
        var shardHits = [TierHits](repeating: TierHits(tiers: tiers, members: memberCount), count: shards.count)
        let asked = (0..<shards.count).filter { !route.runs[$0].isEmpty }
        if spansDevices && asked.count > 1 {
            let failures = Locked<[Int: LookupError]>([:])
            let results = Locked(shardHits)
            // Each shard writes its own part of the route's staging.
            let inputs = UncheckedSendable((route: route, defaults: defaults))
            DispatchQueue.concurrentPerform(iterations: asked.count) { i in
                let s = asked[i]
                var own = TierHits(tiers: tiers, members: memberCount)
                do throws(LookupError) {
                    try lookUp(shard: s, route: inputs.value.route, below: below, defaults: inputs.value.defaults, hits: &own)
                    results.withLock { $0[s] = own }
                } catch {
                    failures.withLock { $0[s] = error }
                }
            }
            if let (_, error) = failures.withLock({ $0.min { $0.key < $1.key } }) { throw error }
            shardHits = results.withLock { $0 }
        } else {
            for s in asked {
                try lookUp(shard: s, route: route, below: below, defaults: defaults, hits: &shardHits[s])
            }
        }
        for own in shardHits {
            for tier in own.answered.indices {
                for member in 0..<memberCount { hits.answered[tier][member] += own.answered[tier][member] }
            }
            for member in 0..<memberCount { hits.missing[member] += own.missing[member] }
        }
        route.gather(batch.runs, vecSize: vecSize)
    }

    /// Why a lookup with keys or a destination in device memory is refused.
    package var deviceMemoryRefusal: String {
        "group \(name) is sharded row-wise (gpu_sharding row_wise), whose lookups route host keys into host memory; look it up with keys and a destination in host memory"
    }

    /// Shard `s`'s lookup of its routed keys into the route's staging.
    private func lookUp(shard s: Int, route: RowRoute, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                        hits: inout TierHits) throws(LookupError) {
        let runs = route.runs[s]
        let start = route.shardStarts[s]
        let keys = UnsafeBufferPointer(rebasing: route.keys[start..<route.shardStarts[s + 1]])
        try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in
            try shards[s].lookup(CacheBatch(keys: keys, runs: runs), below: below, defaults: defaults, hits: &hits)
        }
    }

    /// Routes the update's keys to their owners; each shard replaces or drops the rows it holds.
    package func update(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>) throws(LookupError) -> CacheUpdate {
        if shards.count == 1 { return try shards[0].update(member: member, keys: keys, vectors: vectors) }
        var shardKeys = [[Int64]](repeating: [], count: shards.count)
        var shardVectors = [[Float]](repeating: [], count: shards.count)
        for (i, key) in keys.enumerated() {
            let s = RowShard.owner(of: key, shards: shards.count)
            shardKeys[s].append(key)
            shardVectors[s].append(contentsOf: vectors[(i * vecSize)..<((i + 1) * vecSize)])
        }
        var total = CacheUpdate()
        for s in shards.indices where !shardKeys[s].isEmpty {
            let done = try shardKeys[s].withUnsafeBufferPointer { (k) throws(LookupError) in
                try shardVectors[s].withUnsafeBufferPointer { (v) throws(LookupError) in
                    try shards[s].update(member: member, keys: k, vectors: v)
                }
            }
            total.rows += done.rows
            total.unheldKeys += done.unheldKeys
        }
        return total
    }
}
