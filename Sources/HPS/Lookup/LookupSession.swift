/// Answers lookups for one model: plans them by fusion group, asks each tier
/// in turn for the keys the tier above missed, and fills what no tier holds
/// with the table's default value.
///
/// Thread safety: any number of lookups may run concurrently, also with
/// inserts into the tiers.
public final class LookupSession: Sendable {
    /// The model's configuration.
    public let model: ModelConfiguration
    /// How the model's tables are grouped.
    public let plan: FusionPlan
    /// The key type of the deployment.
    public let keyType: KeyType
    /// For each group: its table in each tier, top tier first.
    let tiers: [[any EmbeddingStoreTable]]
    /// For each group: the default value of each member.
    let defaults: [[Float]]
    /// Threads one lookup may use.
    public let parallelism: Int
    /// Counters since the session started.
    public let statistics: LookupStatistics
    /// Whether keys found only below the top tier are copied into it (`cache_missed_embeddings`).
    public let cacheMissedEmbeddings: Bool
    /// For each group: its tiers as one table.
    let chains: [TierChain?]

    /// Creates a session over tiers that already hold the model's tables.
    /// - Parameter tiers: for each group of `plan`, its table in each tier, top first.
    public init(model: ModelConfiguration, plan: FusionPlan, keyType: KeyType,
                tiers: [[any EmbeddingStoreTable]], parallelism: Int, cacheMissedEmbeddings: Bool = false) {
        self.model = model
        self.cacheMissedEmbeddings = cacheMissedEmbeddings
        chains = tiers.map { $0.isEmpty ? nil : TierChain(tiers: $0, cacheMissedEmbeddings: cacheMissedEmbeddings) }
        self.plan = plan
        self.keyType = keyType
        self.tiers = tiers
        self.parallelism = max(1, parallelism)
        defaults = plan.groups.map { group in group.tables.map { model.defaultValues[$0] } }
        statistics = LookupStatistics(tables: model.tableNames.count, tiers: tiers.first?.count ?? 0)
    }

    /// A fusion group's table in each tier, top first.
    public func tierTables(group: Int) -> [any EmbeddingStoreTable] {
        tiers[group]
    }

    /// A fusion group's tiers as one table, for a cache in front of them
    /// (nil for a group that no tier holds).
    public func tierChain(group: Int) -> TierChain? {
        chains[group]
    }

    /// The index of a table given by name or by index.
    public func tableIndex(_ nameOrIndex: String) throws(LookupError) -> Int {
        if let index = model.tableNames.firstIndex(of: nameOrIndex) { return index }
        if let index = Int(nameOrIndex), index >= 0, index < model.tableNames.count { return index }
        throw .unknownTable(model: model.name, table: nameOrIndex, available: model.tableNames)
    }

    /// Looks up the keys of one table.
    /// - Parameters:
    ///   - table: the table's index in the model.
    ///   - keys: (n) keys.
    /// - Returns: (n × vecSize) floats; a key found in no tier gets the table's default value.
    public func lookup(table: Int, keys: [Int64]) throws(LookupError) -> [Float] {
        try lookup(tables: [(table, keys)])[0]
    }

    /// Looks up several tables in one call: one lookup per fusion group.
    /// - Parameter requests: (table index, keys) pairs; a table may appear more than once.
    /// - Returns: for each request, (n × vecSize) floats.
    public func lookup(tables requests: [(table: Int, keys: [Int64])]) throws(LookupError) -> [[Float]] {
        for request in requests { try checkTable(request.table) }
        // One contiguous key buffer and one output buffer, which the runs borrow.
        let totalKeys = requests.reduce(0) { $0 + $1.keys.count }
        let totalFloats = requests.reduce(0) { $0 + $1.keys.count * model.vecSizes[$1.table] }
        let keys = UnsafeMutableBufferPointer<Int64>.allocate(capacity: max(1, totalKeys))
        let output = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, totalFloats))
        defer { keys.deallocate(); output.deallocate() }
        var runs: [LookupRun] = []
        runs.reserveCapacity(requests.count)
        var keyOffset = 0, floatOffset = 0
        for request in requests {
            _ = UnsafeMutableBufferPointer(rebasing: keys[keyOffset..<(keyOffset + request.keys.count)])
                .initialize(from: request.keys)
            runs.append(LookupRun(member: request.table, keys: keys.baseAddress! + keyOffset, count: request.keys.count,
                                  output: output.baseAddress! + floatOffset))
            keyOffset += request.keys.count
            floatOffset += request.keys.count * model.vecSizes[request.table]
        }
        try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in _ = try lookup(runs) }
        return runs.map { run in
            Array(UnsafeBufferPointer(start: run.output, count: run.count * model.vecSizes[run.member]))
        }
    }

    /// Looks up runs of keys straight into the caller's buffers, one store
    /// lookup per fusion group and tier.
    ///
    /// - Parameter runs: each run's `member` is a table index of the model;
    ///   its `output` holds `count × vecSize(table)` floats.
    /// - Returns: what the call found where, in all and per table.
    /// - Throws: before any lookup, for an unknown table, a key out of the
    ///   32-bit range, or more keys for one table than its limit.
    @discardableResult
    public func lookup(_ runs: UnsafeBufferPointer<LookupRun>, parallelism: Int? = nil) throws(LookupError) -> LookupCounts {
        let threads = parallelism ?? self.parallelism
        var perTable = [Int](repeating: 0, count: model.tableNames.count)
        for run in runs {
            try checkTable(run.member)
            perTable[run.member] += run.count
            if keyType == .int32 {
                for i in 0..<run.count where !keyType.admits(run.keys[i]) {
                    throw .keyOutOfRange(table: model.tableNames[run.member], key: run.keys[i])
                }
            }
        }
        for (table, count) in perTable.enumerated() where count > model.maxKeysPerLookup(table: table) {
            throw .tooManyKeys(model: model.name, table: model.tableNames[table], keys: count,
                               maxBatchSize: model.maxBatchSize, maxPerSample: model.maxQueryKeysPerSample[table])
        }
        var counts = LookupCounts(tables: model.tableNames.count, tiers: tiers.first?.count ?? 0)
        var groupRuns = [[LookupRun]](repeating: [], count: plan.groups.count)
        for run in runs where run.count > 0 {
            var translated = run
            translated.member = plan.memberOfTable[run.member]
            groupRuns[plan.groupOfTable[run.member]].append(translated)
        }
        for (group, runs) in groupRuns.enumerated() where !runs.isEmpty {
            runs.withUnsafeBufferPointer { runs in
                lookupGroup(group, runs: runs, parallelism: threads, counts: &counts)
            }
        }
        statistics.record(counts)
        return counts
    }

    /// One group down the tiers: the keys each tier misses go to the next;
    /// the last fills the defaults. Counts are split per member table.
    private func lookupGroup(_ group: Int, runs: UnsafeBufferPointer<LookupRun>, parallelism: Int, counts: inout LookupCounts) {
        let tables = plan.groups[group].tables
        for run in runs {
            counts.keys += run.count
            counts.tables[tables[run.member]].keys += run.count
        }
        defaults[group].withUnsafeBufferPointer { defaults in
            guard let chain = chains[group] else {
                fillDefaults(runs, defaults: defaults, vecSize: plan.groups[group].vecSize)
                for run in runs {
                    counts.defaults += run.count
                    counts.tables[tables[run.member]].defaults += run.count
                }
                return
            }
            var hits = TierHits(tiers: chain.tiers.count, members: tables.count)
            counts.defaults += chain.lookup(runs, defaults: defaults, missed: nil, parallelism: parallelism, hits: &hits)
            for (member, table) in tables.enumerated() {
                counts.tables[table].defaults += hits.missing[member]
                for tier in hits.answered.indices {
                    counts.tierHits[tier] += hits.answered[tier][member]
                    counts.tables[table].tierHits[tier] += hits.answered[tier][member]
                }
            }
        }
    }

    private func fillDefaults(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>, vecSize: Int) {
        for run in runs {
            run.output.update(repeating: defaults[run.member], count: run.count * vecSize)
        }
    }

    private func checkTable(_ table: Int) throws(LookupError) {
        guard table >= 0 && table < model.tableNames.count else {
            throw .unknownTable(model: model.name, table: String(table), available: model.tableNames)
        }
    }

    // MARK: Sparse lookup

    /// Looks up ragged ids per sample and pools each sample's vectors into one,
    /// as HPS's SparseLookupLayer does.
    /// - Parameters:
    ///   - table: the table's index in the model.
    ///   - ids: all samples' ids, sample after sample.
    ///   - offsets: (samples + 1) ascending offsets into `ids`, from 0 to `ids.count`;
    ///     sample s holds `ids[offsets[s]..<offsets[s+1]]`.
    ///   - combiner: sum, mean or sqrtn.
    /// - Returns: (samples × vecSize) floats.
    public func sparseLookup(table: Int, ids: [Int64], offsets: [Int], combiner: Combiner) throws(LookupError) -> [Float] {
        try checkTable(table)
        guard let first = offsets.first, let last = offsets.last, first == 0, last == ids.count else {
            throw .invalidOffsets(reason: "offsets must start at 0 and end at the number of ids (\(ids.count)); they are \(offsets.first.map(String.init) ?? "empty") … \(offsets.last.map(String.init) ?? "empty")")
        }
        for s in 1..<offsets.count where offsets[s] < offsets[s - 1] {
            throw .invalidOffsets(reason: "offsets must not decrease, but offsets[\(s)] = \(offsets[s]) < offsets[\(s - 1)] = \(offsets[s - 1])")
        }
        let vecSize = model.vecSizes[table]
        let vectors = try lookup(table: table, keys: ids)
        let samples = offsets.count - 1
        var pooled = [Float](repeating: 0, count: samples * vecSize)
        pooled.withUnsafeMutableBufferPointer { out in
            vectors.withUnsafeBufferPointer { vectors in
                for s in 0..<samples {
                    let row = out.baseAddress! + s * vecSize
                    for id in offsets[s]..<offsets[s + 1] {
                        let v = vectors.baseAddress! + id * vecSize
                        for d in 0..<vecSize { row[d] += v[d] }
                    }
                    let scale = combiner.scale(count: offsets[s + 1] - offsets[s])
                    for d in 0..<vecSize { row[d] *= scale }
                }
            }
        }
        return pooled
    }
}
