/// Answers lookups for one model on one device (or on the CPU): plans them
/// by fusion group, asks each group's L1 cache (a GPU table or cache, or a
/// bounded CPU cache in front of slow tiers) and then each tier in turn for
/// the keys the level above missed, and fills what no tier holds with the
/// table's default value. Every caller (the command line, the server, the
/// Swift API) looks up through a session, and every lookup is checked here
/// once: tables, key counts against the model's limits, the 32-bit key range.
///
/// ```swift
/// let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: "hps.json"))
/// let session = try server.session(model: "8_table")
/// let vectors = try session.lookup(table: 0, keys: [1, 2, 3])   // 3 × vec size floats
/// ```
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
    /// The GPU the session's caches live on, or nil for a session on the CPU.
    public let device: Int?
    /// For each group: its table in each tier, top tier first.
    let tiers: [[any EmbeddingStoreTable]]
    /// For each group: its L1 cache, if any (every group has one or none does).
    let caches: [(any EmbeddingCache)?]
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
    /// The levels a lookup asks, top first, as `LookupCounts.tierHits` counts
    /// them: the L1 cache's kind (when the groups have caches), then the stores' kinds.
    public let tierNames: [String]
    /// Whether a lookup may wait on a network or a disk (a Redis Cluster,
    /// RocksDB or memory-mapped tier): such lookups belong on a thread pool,
    /// not on an event loop or Swift's cooperative pool.
    public let mayBlock: Bool

    /// Creates a session over tiers that already hold the model's tables.
    /// - Parameters:
    ///   - tiers: for each group of `plan`, its table in each tier, top first.
    ///   - tierNames: the stores' kinds, top first (for statistics and metrics).
    ///   - caches: for each group its L1 cache, or empty for none.
    ///   - device: the GPU the caches live on, or nil.
    ///   - mayBlock: whether a tier waits on a network or a disk.
    package init(model: ModelConfiguration, plan: FusionPlan, keyType: KeyType,
                tiers: [[any EmbeddingStoreTable]], tierNames: [String] = [], parallelism: Int,
                cacheMissedEmbeddings: Bool = false, caches: [(any EmbeddingCache)?] = [], device: Int? = nil,
                mayBlock: Bool = false) {
        precondition(caches.isEmpty || caches.count == plan.groups.count, "one cache per group, or none")
        precondition(caches.allSatisfy { $0 != nil } || caches.allSatisfy { $0 == nil }, "every group has a cache, or none does")
        self.model = model
        self.cacheMissedEmbeddings = cacheMissedEmbeddings
        chains = tiers.map { $0.isEmpty ? nil : TierChain(tiers: $0, cacheMissedEmbeddings: cacheMissedEmbeddings) }
        self.plan = plan
        self.keyType = keyType
        self.tiers = tiers
        self.caches = caches.isEmpty ? [(any EmbeddingCache)?](repeating: nil, count: plan.groups.count) : caches
        self.device = device
        self.mayBlock = mayBlock
        self.parallelism = max(1, parallelism)
        defaults = plan.groups.map { group in group.tables.map { model.defaultValues[$0] } }
        let storeTiers = tiers.first?.count ?? 0
        let cacheKind = caches.first.flatMap { $0?.kind }
        var names = tierNames.count == storeTiers ? tierNames : (0..<storeTiers).map { "tier\($0)" }
        if let cacheKind { names.insert(cacheKind, at: 0) }
        self.tierNames = names
        statistics = LookupStatistics(tables: model.tableNames.count, tiers: names.count)
    }

    /// Each group's L1 cache (nil where none).
    package var groupCaches: [(any EmbeddingCache)?] { caches }

    /// The background work of the session's caches (refreshes, inserts of
    /// misses): `hps serve` runs it as services; without it the caches apply
    /// pending work at their next lookup.
    public var backgroundWork: [any BackgroundWork] { caches.flatMap { $0?.backgroundWork ?? [] } }

    /// A fusion group's table in each tier, top first.
    package func tierTables(group: Int) -> [any EmbeddingStoreTable] {
        tiers[group]
    }

    /// A fusion group's tiers as one table, for a cache in front of them
    /// (nil for a group that no tier holds).
    package func tierChain(group: Int) -> TierChain? {
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
        try validate(runs.lazy.map { ($0.member, UnsafeBufferPointer(start: $0.keys, count: $0.count)) })
        var counts = LookupCounts(tables: model.tableNames.count, tiers: tierNames.count)
        var groupRuns = [[LookupRun]](repeating: [], count: plan.groups.count)
        for run in runs where run.count > 0 {
            var translated = run
            translated.member = plan.memberOfTable[run.member]
            groupRuns[plan.groupOfTable[run.member]].append(translated)
        }
        for (group, runs) in groupRuns.enumerated() where !runs.isEmpty {
            try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in
                if caches[group] != nil {
                    try lookupCached(group, runs: runs, device: nil, counts: &counts)
                } else {
                    lookupGroup(group, runs: runs, parallelism: threads, counts: &counts)
                }
            }
        }
        statistics.record(counts)
        return counts
    }

    /// Looks up the keys of several tables into one destination, the parts'
    /// rows end to end in the order given.
    ///
    /// - Parameters:
    ///   - parts: (table index, keys) pairs; a table may appear more than once.
    ///   - destination: `sum(keys.count × vecSize(table))` floats in host
    ///     memory, or in the memory of the session's GPU. For device memory
    ///     every group needs a GPU cache on that device, and each group's
    ///     parts must follow one another (one group's rows are one region).
    ///   - layout: how the rows are placed in a device destination (host
    ///     destinations take `.runs` only).
    /// - Returns: what the call found where.
    /// - Throws: before any lookup, for an unknown table, a key out of the
    ///   32-bit range, more keys for a table than its limit, or a destination
    ///   of the wrong size or place.
    @discardableResult
    public func lookup(_ parts: [(table: Int, keys: UnsafeBufferPointer<Int64>)], into destination: LookupDestination,
                       layout: OutputLayout = .runs) throws(LookupError) -> LookupCounts {
        try validate(parts.lazy.map { ($0.table, $0.keys) })
        var floats = 0
        for part in parts { floats += part.keys.count * model.vecSizes[part.table] }
        guard destination.count == floats else {
            throw .destination(reason: "the destination holds \(destination.count) floats but the keys' vectors take \(floats)")
        }
        switch destination {
        case let .host(buffer):
            guard case .runs = layout else {
                throw .destination(reason: "a host destination takes the rows run after run; the sample-major layout is for device memory")
            }
            var runs: [LookupRun] = []
            runs.reserveCapacity(parts.count)
            var offset = 0
            for part in parts where !part.keys.isEmpty {
                runs.append(LookupRun(member: part.table, keys: part.keys.baseAddress!, count: part.keys.count,
                                      output: buffer.baseAddress! + offset))
                offset += part.keys.count * model.vecSizes[part.table]
            }
            return try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in try lookup(runs) }
        case let .device(pointer, _):
            let regions = try deviceRegions(parts.map { ($0.table, $0.keys.count) }, pointer: pointer, layout: layout)
            var counts = LookupCounts(tables: model.tableNames.count, tiers: tierNames.count)
            for region in regions {
                let runs = region.parts.map { p in
                    LookupRun(member: plan.memberOfTable[parts[p].table], keys: parts[p].keys.baseAddress!,
                              count: parts[p].keys.count, output: UnsafeMutablePointer(bitPattern: 8)!)
                }
                try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in
                    try lookupCached(region.group, runs: runs, device: (pointer + region.start, layout), counts: &counts)
                }
            }
            statistics.record(counts)
            return counts
        }
    }

    /// Looks up keys that lie in the memory of the session's GPU into memory
    /// of that GPU, the parts' rows end to end in the order given: the keys
    /// never visit the host (only the keys no GPU cache holds, which the tiers
    /// below answer). The GPU work starts after the work queued on `stream`
    /// before the call (which may still be writing the keys), and the work
    /// queued on `stream` after the call waits for the rows: they are in
    /// stream order. A cache may return before they are written (a GPU static
    /// table that no key beside it can be asked of, whose counts then show
    /// every key as its hit; its statistics count the misses later); the
    /// others return once they are.
    ///
    /// - Parameters:
    ///   - parts: (table index, keys) pairs; a table may appear more than
    ///     once. The keys must be of the deployment's key type (`keyType`:
    ///     8-byte keys, or 4-byte keys read as unsigned for `supportlonglong:
    ///     false`) and on the session's GPU.
    ///   - stream: the caller's stream whose earlier work writes the keys.
    ///   - destination: device memory of the session's GPU, `sum(count ×
    ///     vecSize(table))` floats; each group's parts must follow one another.
    ///   - layout: how the rows are placed.
    /// - Returns: what the call found where.
    /// - Throws: before any lookup, for an unknown table, keys of another
    ///   type or GPU, more keys for a table than its limit, a session on the
    ///   CPU or a group without a GPU cache, or a destination of the wrong
    ///   size or place.
    @discardableResult
    public func lookup(deviceKeys parts: [(table: Int, keys: DeviceKeys)], after stream: DeviceStream = .legacyDefault,
                       into destination: LookupDestination, layout: OutputLayout = .runs) throws(LookupError) -> LookupCounts {
        var perTable = [Int](repeating: 0, count: model.tableNames.count)
        for part in parts {
            try checkTable(part.table)
            perTable[part.table] += part.keys.count
            guard part.keys.count >= 0 else {
                throw .deviceKeys(reason: "the keys of table \(model.tableNames[part.table]) number \(part.keys.count); a count cannot be negative")
            }
            guard part.keys.count == 0 || part.keys.start.address != 0 else {
                throw .deviceKeys(reason: "the keys of table \(model.tableNames[part.table]) are at address 0 but their count is \(part.keys.count)")
            }
            guard part.keys.type == keyType else {
                throw .deviceKeys(reason: "model \(model.name) takes \(keyType.rawValue) keys (supportlonglong \(keyType == .int64)), but the device keys of table \(model.tableNames[part.table]) are \(part.keys.type.rawValue); convert them on the device first")
            }
            guard part.keys.count == 0 || part.keys.start.device == device else {
                throw .deviceKeys(reason: "the keys of table \(model.tableNames[part.table]) are in the memory of GPU \(part.keys.start.device) but this session of model \(model.name) runs on \(device.map { "GPU \($0)" } ?? "the CPU")")
            }
        }
        try checkLimits(perTable)
        guard case let .device(pointer, count) = destination else {
            throw .destination(reason: "keys in device memory are looked up into device memory; give a device destination on the keys' GPU")
        }
        var floats = 0
        for part in parts { floats += part.keys.count * model.vecSizes[part.table] }
        guard count == floats else {
            throw .destination(reason: "the destination holds \(count) floats but the keys' vectors take \(floats)")
        }
        let regions = try deviceRegions(parts.map { ($0.table, $0.keys.count) }, pointer: pointer, layout: layout)
        var counts = LookupCounts(tables: model.tableNames.count, tiers: tierNames.count)
        for region in regions {
            // The runs carry members and counts; their keys are the device ranges.
            let runs = region.parts.map { p in
                LookupRun(member: plan.memberOfTable[parts[p].table], keys: UnsafePointer(bitPattern: 8)!,
                          count: parts[p].keys.count, output: UnsafeMutablePointer(bitPattern: 8)!)
            }
            let keys = region.parts.map { parts[$0].keys }
            try runs.withUnsafeBufferPointer { (runs) throws(LookupError) in
                try lookupCached(region.group, runs: runs, deviceKeys: (keys, stream), device: (pointer + region.start, layout),
                                 counts: &counts)
            }
        }
        statistics.record(counts)
        return counts
    }

    /// The regions of a device destination, one per fusion group: the group,
    /// where its rows start, and its parts' indices (parts of no keys left
    /// out), after checking that the destination is on the session's GPU,
    /// that each group's parts follow one another and has a cache there, and
    /// that a sample-major layout covers one group.
    private func deviceRegions(_ parts: [(table: Int, count: Int)], pointer: DevicePointer<Float>,
                               layout: OutputLayout) throws(LookupError) -> [(group: Int, start: Int, parts: [Int])] {
        guard let device, pointer.device == device else {
            throw .destination(reason: "the destination is memory of GPU \(pointer.device) but this session of model \(model.name) runs on \(device.map { "GPU \($0)" } ?? "the CPU")")
        }
        var regions: [(group: Int, start: Int, parts: [Int])] = []
        var offset = 0
        for (p, part) in parts.enumerated() where part.count > 0 {
            let group = plan.groupOfTable[part.table]
            if let last = regions.last, last.group == group {
                regions[regions.count - 1].parts.append(p)
            } else {
                guard !regions.contains(where: { $0.group == group }) else {
                    throw .destination(reason: "the parts of fusion group \(plan.groups[group].name) must follow one another in a device destination")
                }
                regions.append((group, offset, [p]))
            }
            offset += part.count * model.vecSizes[part.table]
        }
        if case .samplesByRun = layout, regions.count > 1 {
            throw .destination(reason: "the sample-major layout needs the tables of one fusion group; model \(model.name)'s parts span \(regions.count) groups")
        }
        for region in regions {
            if let sharded = caches[region.group] as? RowWiseShardedCache { throw .destination(reason: sharded.deviceMemoryRefusal) }
            guard caches[region.group]?.device != device else { continue }
            throw .destination(reason: "fusion group \(plan.groups[region.group].name) of model \(model.name) has no cache on GPU \(device) to write device memory")
        }
        return regions
    }

    /// The one check of every lookup: known tables, keys within the 32-bit
    /// range of a `supportlonglong: false` deployment, and per table at most
    /// its limit of keys in all.
    func validate<Parts: Sequence>(_ parts: Parts) throws(LookupError)
        where Parts.Element == (Int, UnsafeBufferPointer<Int64>) {
        var perTable = [Int](repeating: 0, count: model.tableNames.count)
        for (table, keys) in parts {
            try checkTable(table)
            perTable[table] += keys.count
            if keyType == .int32 {
                // Any high bit set (a key beyond 32 bits or negative), found
                // in one pass that vectorizes; the first such key named.
                var high: UInt64 = 0
                for key in keys { high |= UInt64(bitPattern: key) &>> 32 }
                if high != 0, let key = keys.first(where: { !keyType.admits($0) }) {
                    throw .keyOutOfRange(table: model.tableNames[table], key: key)
                }
            }
        }
        try checkLimits(perTable)
    }

    /// Per table at most its limit of keys in one lookup.
    private func checkLimits(_ perTable: [Int]) throws(LookupError) {
        for (table, count) in perTable.enumerated() where count > model.maxKeysPerLookup(table: table) {
            throw .tooManyKeys(model: model.name, table: model.tableNames[table], keys: count,
                               maxBatchSize: model.maxBatchSize, maxPerSample: model.maxQueryKeysPerSample[table])
        }
    }

    /// One group through its L1 cache: its keys gathered into one buffer
    /// (the cache uploads or probes them at once), then the cache and, for
    /// its misses, the tiers below.
    private func lookupCached(_ group: Int, runs: UnsafeBufferPointer<LookupRun>,
                              deviceKeys: (keys: [DeviceKeys], stream: DeviceStream)? = nil,
                              device: (pointer: DevicePointer<Float>, layout: OutputLayout)?,
                              counts: inout LookupCounts) throws(LookupError) {
        let tables = plan.groups[group].tables
        var total = 0
        for run in runs {
            total += run.count
            counts.keys += run.count
            counts.tables[tables[run.member]].keys += run.count
        }
        var hits = TierHits(tiers: tierNames.count, members: tables.count)
        if let deviceKeys {
            try defaults[group].withUnsafeBufferPointer { (defaults) throws(LookupError) in
                try caches[group]!.lookup(CacheBatch(deviceKeys: deviceKeys.keys, after: deviceKeys.stream, runs: runs,
                                                     device: device?.pointer, layout: device?.layout ?? .runs),
                                          below: chains[group], defaults: defaults, hits: &hits)
            }
            add(hits, group: group, to: &counts)
            return
        }
        // The runs' keys as one range: where they are already (runs whose keys
        // follow one another, as a served request's and a dense model's are),
        // else gathered into one buffer.
        let contiguous = runs.count > 0 && zip(runs, runs.dropFirst()).allSatisfy { $0.keys + $0.count == $1.keys }
        let keys = UnsafeMutableBufferPointer<Int64>.allocate(capacity: contiguous ? 1 : max(1, total))
        let gathered = UnsafeMutableBufferPointer<LookupRun>.allocate(capacity: runs.count)
        defer { keys.deallocate(); gathered.deallocate() }
        let batchKeys: UnsafeBufferPointer<Int64>
        if contiguous {
            _ = gathered.initialize(fromContentsOf: runs)
            batchKeys = UnsafeBufferPointer(start: runs[0].keys, count: total)
        } else {
            var offset = 0
            for (r, run) in runs.enumerated() {
                (keys.baseAddress! + offset).update(from: run.keys, count: run.count)
                gathered[r] = LookupRun(member: run.member, keys: keys.baseAddress! + offset, count: run.count, output: run.output)
                offset += run.count
            }
            batchKeys = UnsafeBufferPointer(rebasing: keys[0..<total])
        }
        try defaults[group].withUnsafeBufferPointer { (defaults) throws(LookupError) in
            try caches[group]!.lookup(CacheBatch(keys: batchKeys, runs: UnsafeBufferPointer(gathered), device: device?.pointer,
                                                 layout: device?.layout ?? .runs),
                                      below: chains[group], defaults: defaults, hits: &hits)
        }
        add(hits, group: group, to: &counts)
    }

    /// Adds a group's hits per tier and member to the counts of its tables.
    private func add(_ hits: TierHits, group: Int, to counts: inout LookupCounts) {
        let tables = plan.groups[group].tables
        for (member, table) in tables.enumerated() {
            counts.defaults += hits.missing[member]
            counts.tables[table].defaults += hits.missing[member]
            for tier in hits.answered.indices {
                counts.tierHits[tier] += hits.answered[tier][member]
                counts.tables[table].tierHits[tier] += hits.answered[tier][member]
            }
        }
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
            _ = chain.lookup(runs, defaults: defaults, missed: nil, parallelism: parallelism, hits: &hits)
            add(hits, group: group, to: &counts)
        }
    }

    private func fillDefaults(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>, vecSize: Int) {
        for run in runs {
            run.output.update(repeating: defaults[run.member], count: run.count * vecSize)
        }
    }

    func checkTable(_ table: Int) throws(LookupError) {
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
