/// What applying new vectors to a model's table did.
public struct UpdateReport: Sendable, Equatable {
    /// Keys applied.
    public var keys = 0
    /// What one tier took of an update.
    public struct TierWrite: Sendable, Equatable {
        /// The tier's name (`hash_map`, `redis_cluster`, `rocks_db`).
        public var name: String
        /// Keys that were new there.
        public var inserted: Int
        /// Keys that replaced a vector.
        public var replaced: Int
    }

    /// Each tier written, in the order written.
    public var tiers: [TierWrite] = []
    /// Tiers that take no writes (a read-only RocksDB, the memory-mapped model
    /// files), which the update passed by.
    public var readOnlyTiers: [String] = []
    /// L1 cache rows replaced (GPU caches) or dropped (CPU caches).
    public var cachedRowsUpdated = 0
    /// Keys a GPU static table (or a uvm cache's table) does not hold, per
    /// cache (`gpu_static on GPU 0`): HugeCTR's static tables keep the keys
    /// they were built with, so these are answered by the tiers below.
    public var unheldKeys: [String: Int] = [:]

    /// Keys some cache with a fixed set of keys does not hold (the most over those caches).
    public var keysNotInStaticTables: Int { unheldKeys.values.max() ?? 0 }

    public init() {}
}

/// Which parts of the hierarchy an update writes: HugeCTR runs one Kafka
/// consumer group per store (`hps.volatile`, `hps.persistent`), each writing
/// its own store.
public struct UpdateTargets: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// The persistent store (RocksDB), unless it is read-only.
    public static let persistent = UpdateTargets(rawValue: 1)
    /// The volatile store (hash map, Redis Cluster).
    public static let volatile = UpdateTargets(rawValue: 2)
    /// The L1 caches.
    public static let caches = UpdateTargets(rawValue: 4)
    /// Everything.
    public static let all: UpdateTargets = [.persistent, .volatile, .caches]
}

/// Why new vectors could not be applied.
public enum UpdateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The model or table is not served (the lookup error says which exist).
    case lookup(LookupError)
    /// The vectors do not hold vec size floats per key.
    case vectorCount(table: String, keys: Int, vecSize: Int, floats: Int)
    /// A tier refused the write; the tiers before it in `written` took it.
    case store(StoreError, written: [String])
    /// An L1 cache failed to take the update (its device failed); every
    /// tier below it took it.
    case cache(LookupError, written: [String])

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .lookup(error):
            return error.description
        case let .vectorCount(table, keys, vecSize, floats):
            return "an update of table \(table) gave \(floats) floats for \(keys) keys of vec size \(vecSize); expected \(keys * vecSize)"
        case let .store(error, written):
            return "the update was not applied everywhere (written to \(written.isEmpty ? "no tier" : written.joined(separator: ", "))): \(error.description)"
        case let .cache(error, written):
            return "the update was written to \(written.joined(separator: ", ")) but not to an L1 cache: \(error.description)"
        }
    }
}

extension HierarchicalParameterServer {
    /// Applies new vectors for keys of one table of a model, as an online
    /// update from Kafka or the API does: to the persistent store, then the
    /// volatile store (HugeCTR's order), then to every L1 cache of the model
    /// that holds the keys (on the CPU the rows are dropped, so the next
    /// lookup reads the new vector from below; on a GPU they are replaced in
    /// place). When it returns, a lookup anywhere answers the new vectors.
    /// Applying the same update twice leaves the same state.
    ///
    /// - Parameters:
    ///   - model: the model's name.
    ///   - table: the table's index in the model.
    ///   - keys: (n) keys; with `supportlonglong: false` each must fit in 32 bits.
    ///   - vectors: (n × vecSize) floats, row i for `keys[i]`.
    ///   - targets: the parts written (all by default).
    public func update(model: String, table: Int, keys: UnsafeBufferPointer<Int64>,
                       vectors: UnsafeBufferPointer<Float>, targets: UpdateTargets = .all) throws(UpdateError) -> UpdateReport {
        let deployment: ModelDeployment
        do throws(LookupError) {
            deployment = try self.deployment(model: model)
        } catch {
            throw .lookup(error)
        }
        let session = deployment.session
        let names = session.model.tableNames
        guard table >= 0 && table < names.count else {
            throw .lookup(.unknownTable(model: model, table: String(table), available: names))
        }
        let vecSize = session.model.vecSizes[table]
        guard vectors.count == keys.count * vecSize else {
            throw .vectorCount(table: names[table], keys: keys.count, vecSize: vecSize, floats: vectors.count)
        }
        if session.keyType == .int32, let key = keys.first(where: { Int64(Int32(truncatingIfNeeded: $0)) != $0 }) {
            throw .lookup(.keyOutOfRange(table: names[table], key: key))
        }
        var report = UpdateReport()
        report.keys = keys.count
        guard !keys.isEmpty else { return report }
        let group = session.plan.groupOfTable[table]
        let member = session.plan.memberOfTable[table]
        let readOnlyPersistent = persistentStore.map { $0 is any FileBackedStore || configuration.persistentDatabase.readOnly } ?? false
        // The session's tiers run volatile first; updates go to the persistent tier first.
        var written: [String] = []
        for (tier, (tierTable, name)) in zip(session.tiers[group], session.tierNames.suffix(session.tiers[group].count)).enumerated().reversed() {
            let isPersistent = deployment.persistentTiers[group] == tier
            guard targets.contains(isPersistent ? .persistent : .volatile) else { continue }
            if isPersistent && readOnlyPersistent {
                report.readOnlyTiers.append(name)
                continue
            }
            do throws(StoreError) {
                let counts = try tierTable.insert(member: member, keys: keys, vectors: vectors, parallelism: session.parallelism)
                report.tiers.append(UpdateReport.TierWrite(name: name, inserted: counts.inserted, replaced: counts.replaced))
                written.append(name)
            } catch {
                throw .store(error, written: written)
            }
        }
        for cache in deployment.caches(group: group) where targets.contains(.caches) {
            do throws(LookupError) {
                let update = try cache.update(member: member, keys: keys, vectors: vectors)
                report.cachedRowsUpdated += update.rows
                if update.unheldKeys > 0 {
                    report.unheldKeys[cache.device.map { "\(cache.kind) on GPU \($0)" } ?? cache.kind, default: 0] += update.unheldKeys
                }
            } catch {
                throw .cache(error, written: written)
            }
        }
        return report
    }
}
