/// The tiers of one table, top first, answering as one table: the keys each
/// tier misses are asked of the next, and what no tier holds gets the
/// default. A session looks up through it, and so does a GPU cache when it
/// fills its misses, so that both see the whole hierarchy.
///
/// Inserts and erases go to the top tier. With `cacheMissedEmbeddings`, keys
/// found only below are copied into the top tier (`cache_missed_embeddings`).
///
/// Thread safety: as the tiers'.
package final class TierChain: EmbeddingStoreTable, Sendable {
    /// The tiers, top first (at least one).
    package let tiers: [any EmbeddingStoreTable]
    /// Whether keys found only below are copied into the top tier.
    package let cacheMissedEmbeddings: Bool

    /// Chains `tiers`, which share the tag's layout.
    package init(tiers: [any EmbeddingStoreTable], cacheMissedEmbeddings: Bool = false) {
        precondition(!tiers.isEmpty, "a tier chain needs a tier")
        self.tiers = tiers
        self.cacheMissedEmbeddings = cacheMissedEmbeddings
    }

    package var tag: String { tiers[0].tag }
    package var vecSize: Int { tiers[0].vecSize }
    package var memberCount: Int { tiers[0].memberCount }
    /// The keys of the top tier.
    package var count: Int { tiers[0].count }

    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        var hits = TierHits(tiers: tiers.count, members: memberCount)
        return lookup(runs, defaults: defaults, missed: missed, parallelism: parallelism, hits: &hits)
    }

    /// `lookup`, also adding to `hits` the keys each tier answered and the
    /// keys no tier holds, per member. The counting costs work per missed
    /// key only (and, for runs of several members over one tier, a buffer
    /// for the missed indices when `missed` is nil).
    /// - Returns: the keys no tier holds (filled with the defaults, and listed in `missed`).
    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int, hits: inout TierHits) -> Int {
        guard !runs.isEmpty else { return 0 }
        var total = 0
        var oneMember = true
        for run in runs {
            total += run.count
            hits.answered[0][run.member] += run.count  // less the misses, below
            if run.member != runs[0].member { oneMember = false }
        }
        let first = tiers[0]
        if tiers.count == 1 {
            if oneMember {
                let misses = first.lookup(runs, defaults: defaults, missed: missed, parallelism: parallelism)
                hits.answered[0][runs[0].member] -= misses
                hits.missing[runs[0].member] += misses
                return misses
            }
            let indices = missed ?? UnsafeMutablePointer<Int>.allocate(capacity: total)
            defer { if missed == nil { indices.deallocate() } }
            let misses = first.lookup(runs, defaults: defaults, missed: indices, parallelism: parallelism)
            // The missed indices ascend, so one walk over the runs attributes them.
            var r = 0, runEnd = runs[0].count
            for j in 0..<misses {
                while indices[j] >= runEnd { r += 1; runEnd += runs[r].count }
                hits.answered[0][runs[r].member] -= 1
                hits.missing[runs[r].member] += 1
            }
            return misses
        }
        let firstMissed = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, total))
        defer { firstMissed.deallocate() }
        var missCount = first.lookup(runs, defaults: nil, missed: firstMissed.baseAddress, parallelism: parallelism)
        // The missed keys, gathered into one batch for each lower tier.
        var starts = [Int](repeating: 0, count: runs.count + 1)
        for (i, run) in runs.enumerated() { starts[i + 1] = starts[i] + run.count }
        var keys = [Int64](repeating: 0, count: missCount)
        var members = [Int](repeating: 0, count: missCount)
        var flats = [Int](repeating: 0, count: missCount)
        var outputs = [UnsafeMutablePointer<Float>](repeating: runs[0].output, count: missCount)
        var r = 0
        for j in 0..<missCount {
            let flat = firstMissed[j]
            while starts[r + 1] <= flat { r += 1 }
            let run = runs[r]
            keys[j] = run.keys[flat - starts[r]]
            members[j] = run.member
            hits.answered[0][run.member] -= 1
            flats[j] = flat
            outputs[j] = run.output + (flat - starts[r]) * vecSize
        }
        for level in 1..<tiers.count where missCount > 0 {
            let tier = tiers[level]
            let isLast = level == tiers.count - 1
            var found = [Float](repeating: 0, count: missCount * vecSize)
            let stillMissing = UnsafeMutableBufferPointer<Int>.allocate(capacity: missCount)
            defer { stillMissing.deallocate() }
            let misses: Int = keys.withUnsafeBufferPointer { keys in
                found.withUnsafeMutableBufferPointer { found in
                    var sub: [LookupRun] = []
                    var j = 0
                    while j < missCount {
                        var end = j + 1
                        while end < missCount && members[end] == members[j] { end += 1 }
                        sub.append(LookupRun(member: members[j], keys: keys.baseAddress! + j, count: end - j,
                                             output: found.baseAddress! + j * vecSize))
                        j = end
                    }
                    return sub.withUnsafeBufferPointer {
                        tier.lookup($0, defaults: isLast ? defaults : nil, missed: stillMissing.baseAddress,
                                    parallelism: parallelism)
                    }
                }
            }
            if cacheMissedEmbeddings && missCount > misses {
                copyToTop(keys: keys, members: members, vectors: found, count: missCount,
                          missing: UnsafeBufferPointer(start: stillMissing.baseAddress, count: misses), parallelism: parallelism)
            }
            // Write back what this tier answered (all of it at the last tier, where
            // the rest are defaults, or untouched without defaults) and keep the rest.
            var m = 0, next = 0
            for j in 0..<missCount {
                let missedHere = m < misses && stillMissing[m] == j
                if missedHere { m += 1 } else { hits.answered[level][members[j]] += 1 }
                if !missedHere || (isLast && defaults != nil) {
                    found.withUnsafeBufferPointer { found in
                        outputs[j].update(from: found.baseAddress! + j * vecSize, count: vecSize)
                    }
                }
                if missedHere {
                    keys[next] = keys[j]; members[next] = members[j]; flats[next] = flats[j]; outputs[next] = outputs[j]
                    next += 1
                }
            }
            missCount = next
        }
        for j in 0..<missCount { hits.missing[members[j]] += 1 }
        // What no tier holds, in ascending flat order (the order was kept throughout).
        if let missed { for j in 0..<missCount { missed[j] = flats[j] } }
        return missCount
    }

    /// Copies what a lower tier answered into the top tier, member by member.
    private func copyToTop(keys: [Int64], members: [Int], vectors: [Float], count: Int,
                           missing: UnsafeBufferPointer<Int>, parallelism: Int) {
        var isMissing = [Bool](repeating: false, count: count)
        for j in missing { isMissing[j] = true }
        var byMember: [Int: (keys: [Int64], vectors: [Float])] = [:]
        for j in 0..<count where !isMissing[j] {
            byMember[members[j], default: ([], [])].keys.append(keys[j])
            byMember[members[j], default: ([], [])].vectors.append(contentsOf: vectors[(j * vecSize)..<((j + 1) * vecSize)])
        }
        for (member, rows) in byMember {
            rows.keys.withUnsafeBufferPointer { k in
                rows.vectors.withUnsafeBufferPointer { v in
                    // A failure here only costs a later miss; the lookup itself has its answer.
                    _ = try? tiers[0].insert(member: member, keys: k, vectors: v, parallelism: parallelism)
                }
            }
        }
    }

    package func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        try tiers[0].insert(member: member, keys: keys, vectors: vectors, parallelism: parallelism)
    }

    package func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int {
        tiers[0].erase(member: member, keys: keys)
    }
}
