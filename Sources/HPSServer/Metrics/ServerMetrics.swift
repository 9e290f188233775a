package import HPS
package import Prometheus

/// The server's Prometheus metrics, served on the metrics port at `/metrics`.
///
/// Per model: inference requests and failures (by HTTP status), request and
/// lookup latency histograms, and the lookup time on each GPU; per model and
/// table: keys looked up, keys answered by each tier (named by the sessions'
/// `tierNames`: the L1 cache's kind first, then the stores'), keys answered
/// with the default value, the hit rate of each tier and of the L1 cache since
/// start (a fused lookup split by its member tables' keys); per L1 cache (a
/// fusion group on a device or the CPU): its hit rate, inserts, evictions and
/// refreshes, read from its statistics when the metrics are scraped; per
/// store tier, the faults it met while serving (`TierFaults`).
package final class ServerMetrics: Sendable {
    /// The registry the metrics live in.
    package let registry = PrometheusCollectorRegistry()
    /// The sessions served, each once: those given at start, and those of
    /// models loaded since (`register`), less those unloaded (`unregister`).
    private let served: Locked<[LookupSession]>
    private var sessions: [LookupSession] { served.withLock { $0 } }
    /// Each served session's counters, made once: a registry look-up per
    /// request and table costs more than the lookup of one sample.
    private let lookupMetrics: [ObjectIdentifier: LookupMetrics]
    private let requestMetrics: [String: RequestMetrics]
    /// Each cache's statistics at the last scrape, so that its counters grow by the difference.
    private let cacheSnapshots = Locked<[ObjectIdentifier: CacheStatistics]>([:])
    /// The update consumers, and the counts last exported per (consumer, topic).
    private let updates: [any UpdateCounting]
    private let updateSnapshots = Locked<[String: UpdateCounts]>([:])
    /// The store tiers whose faults are exported, and the count last exported per tier.
    private let stores: [any EmbeddingStore]
    private let faultSnapshots = Locked<[String: Int]>([:])
    private static let latencyBuckets: [Duration] = [
        .microseconds(10), .microseconds(25),
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
    ]

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "hps", metricName: metric, unitName: unit, helpText: help)
    }
    private static var requests: MetricNameDescriptor { name("inference_requests", "total", "Inference requests received") }
    private static var failures: MetricNameDescriptor { name("inference_failures", "total", "Inference requests refused, by HTTP status") }
    private static var requestDuration: MetricNameDescriptor { name("inference_request_duration", "seconds",
                                              "Time from request to response, parsing and encoding included") }
    private static var receiveDuration: MetricNameDescriptor { name("inference_request_receive_duration", "seconds",
                                              "Time from a request's head to the last byte of its body (part of the request's duration)") }
    private static var queueDuration: MetricNameDescriptor { name("inference_queue_duration", "seconds",
                                            "Time from a request reaching its model's batcher to the start of the lookup that answers it: the batcher's queue and, for a lookup on a lookup thread, the hand-off to that thread (part of the request's duration)") }
    private static var resumeDuration: MetricNameDescriptor { name("lookup_resume_duration", "seconds",
                                             "Time from the end of a lookup on a lookup thread to its request's task running again (part of the request's duration)") }
    private static var lookupDuration: MetricNameDescriptor { name("lookup_duration", "seconds", "Time of the embedding lookup alone") }
    private static var gpuLookupDuration: MetricNameDescriptor { name("gpu_lookup_duration", "seconds",
                                                "Time of the lookups on a GPU's sessions (a prediction model's dense head included), per device") }
    private static var keys: MetricNameDescriptor { name("keys_looked_up", "total", "Keys looked up, per table") }
    private static var tierHits: MetricNameDescriptor { name("tier_hits", "total", "Keys answered by each tier (the L1 cache first), per table") }
    private static var defaults: MetricNameDescriptor { name("default_value_keys", "total", "Keys found in no tier, answered with the table's default value, per table") }
    private static var batches: MetricNameDescriptor { name("lookup_batches", "total", "Lookups made, each for one or more merged requests") }
    private static var batchRequests: MetricNameDescriptor { name("lookup_batch", "requests", "Requests merged into one lookup (dynamic batching)") }
    private static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    private static var hitRatio: MetricNameDescriptor { name("tier_hit", "ratio", "Share of a table's keys looked up since start that each tier answered") }
    private static var l1HitRatio: MetricNameDescriptor { name("l1_hit", "ratio",
                                         "Share of a table's keys looked up since start through an L1 cache that the cache answered") }
    private static var cacheHitRatio: MetricNameDescriptor { name("l1_cache_hit", "ratio", "Share of the keys an L1 cache was asked since start that it held, per fusion group and device") }
    private static var cacheInserts: MetricNameDescriptor { name("l1_cache_inserts", "total", "Rows an L1 cache inserted after misses (or prefilled), per fusion group and device") }
    private static var cacheEvictions: MetricNameDescriptor { name("l1_cache_evictions", "total", "Rows an L1 cache evicted to make room, per fusion group and device") }
    private static var updateMessages: MetricNameDescriptor { name("update_messages", "total", "Online update messages applied, per consumer group and topic") }
    private static var updateKeys: MetricNameDescriptor { name("update_keys", "total", "Keys of online updates applied, per consumer group and topic") }
    private static var updateMalformed: MetricNameDescriptor { name("update_malformed_messages", "total", "Online update messages skipped as malformed, per consumer group and topic") }
    private static var updateUnheld: MetricNameDescriptor { name("update_keys_not_in_gpu_table", "total", "Keys of online updates that a GPU static table does not hold (served from the tiers below), per consumer group and topic") }
    private static var tierFaults: MetricNameDescriptor { name("tier_faults", "total", "Faults a store tier met while serving (a failed read, a model file changed under the mapped tier), whose keys were answered from the tiers below, per tier") }
    private static var cacheRefreshes: MetricNameDescriptor { name("l1_cache_refreshes", "total", "Refreshes of an L1 cache's rows from the tiers below, per fusion group and device") }

    /// Metrics for the sessions served.
    /// - Parameters:
    ///   - sessions: every session a request may be looked up on (the
    ///     replicas of each model, and the prediction models' sessions); a
    ///     session given twice counts once.
    ///   - modelNames: every name requests may be counted under (the
    ///     sessions' models and other served models); others are counted
    ///     too, only more slowly.
    ///   - updates: the update consumers whose counts are exported.
    ///   - stores: the store tiers whose faults are exported.
    package init(sessions: [LookupSession], modelNames: [String] = [], updates: [any UpdateCounting] = [],
                stores: [any EmbeddingStore] = []) {
        self.updates = updates
        self.stores = stores.filter { $0.faults != nil }
        for store in self.stores {
            registry.makeCounter(descriptor: Self.tierFaults, labels: [("tier", store.kind)]).increment(by: Int64(0))
        }
        var seen = Set<ObjectIdentifier>()
        let sessions = sessions.filter { seen.insert(ObjectIdentifier($0)).inserted }
        served = Locked(sessions)
        let registry = self.registry
        var lookupMetrics: [ObjectIdentifier: LookupMetrics] = [:]
        var requestMetrics: [String: RequestMetrics] = [:]
        for session in sessions {
            let model = session.model.name
            let tiers = session.tierNames
            lookupMetrics[ObjectIdentifier(session)] = LookupMetrics(
                duration: registry.makeDurationHistogram(descriptor: Self.lookupDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                gpuDuration: session.device.map { device in
                    registry.makeDurationHistogram(descriptor: Self.gpuLookupDuration, labels: [("model", model), ("device", String(device))],
                                                   buckets: Self.latencyBuckets)
                },
                keys: session.model.tableNames.map { registry.makeCounter(descriptor: Self.keys, labels: [("model", model), ("table", $0)]) },
                tierHits: session.model.tableNames.map { table in
                    tiers.map { registry.makeCounter(descriptor: Self.tierHits, labels: [("model", model), ("table", table), ("tier", $0)]) }
                },
                defaults: session.model.tableNames.map { registry.makeCounter(descriptor: Self.defaults, labels: [("model", model), ("table", $0)]) })
        }
        for model in Set(sessions.map(\.model.name) + modelNames) {
            requestMetrics[model] = RequestMetrics(
                requests: registry.makeCounter(descriptor: Self.requests, labels: [("model", model)]),
                duration: registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                receive: registry.makeDurationHistogram(descriptor: Self.receiveDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                queue: registry.makeDurationHistogram(descriptor: Self.queueDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                resume: registry.makeDurationHistogram(descriptor: Self.resumeDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                batches: registry.makeCounter(descriptor: Self.batches, labels: [("model", model)]),
                batchRequests: registry.makeValueHistogram(descriptor: Self.batchRequests, labels: [("model", model)], buckets: Self.batchBuckets))
        }
        self.lookupMetrics = lookupMetrics
        self.requestMetrics = requestMetrics
    }

    /// Adds the sessions of a model loaded while serving: their caches and
    /// hit ratios are exported from the next scrape on. (Their lookups are
    /// counted through the registry's look-up, a little more slowly than
    /// those of the sessions given at start.)
    func register(sessions: [LookupSession]) {
        served.withLock { served in
            for session in sessions where !served.contains(where: { $0 === session }) { served.append(session) }
        }
    }

    /// Removes the sessions of a model unloaded or replaced: the counters
    /// keep their totals, the gauges their last values.
    func unregister(sessions: [LookupSession]) {
        served.withLock { served in served.removeAll { session in sessions.contains { $0 === session } } }
    }

    /// One session's counters.
    private struct LookupMetrics: Sendable {
        let duration: DurationHistogram
        /// For a session on a GPU.
        let gpuDuration: DurationHistogram?
        let keys: [Counter]
        /// Per table, per tier of the session.
        let tierHits: [[Counter]]
        let defaults: [Counter]
    }

    /// One served model's request counters.
    private struct RequestMetrics: Sendable {
        let requests: Counter
        let duration: DurationHistogram
        let receive: DurationHistogram
        let queue: DurationHistogram
        let resume: DurationHistogram
        let batches: Counter
        let batchRequests: ValueHistogram
    }

    /// Counts one inference request and its latency.
    func recordRequest(model: String, status: Int, duration: Duration) {
        if let metrics = requestMetrics[model] {
            metrics.requests.increment()
            metrics.duration.record(duration)
            if status >= 400 {
                registry.makeCounter(descriptor: Self.failures, labels: [("model", model), ("status", String(status))]).increment()
            }
            return
        }
        registry.makeCounter(descriptor: Self.requests, labels: [("model", model)]).increment()
        if status >= 400 {
            registry.makeCounter(descriptor: Self.failures, labels: [("model", model), ("status", String(status))]).increment()
        }
        registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("model", model)], buckets: Self.latencyBuckets).record(duration)
    }

    /// Records how long one request's body took to arrive.
    func recordReceive(model: String, duration: Duration) {
        record(duration, in: \.receive, Self.receiveDuration, model: model)
    }

    /// Records how long one request waited before the lookup that answers it started.
    func recordQueue(model: String, duration: Duration) {
        record(duration, in: \.queue, Self.queueDuration, model: model)
    }

    /// Records how long a request's task took to run again after its lookup on a lookup thread.
    func recordResume(model: String, duration: Duration) {
        record(duration, in: \.resume, Self.resumeDuration, model: model)
    }

    /// Records a duration in a model's histogram: the one made at start, or
    /// for a model served since, the registry's.
    private func record(_ duration: Duration, in histogram: KeyPath<RequestMetrics, DurationHistogram>,
                        _ descriptor: MetricNameDescriptor, model: String) {
        if let metrics = requestMetrics[model] {
            metrics[keyPath: histogram].record(duration)
            return
        }
        registry.makeDurationHistogram(descriptor: descriptor, labels: [("model", model)], buckets: Self.latencyBuckets).record(duration)
    }

    /// Counts one lookup on `session` (on its GPU's histogram too for a session on a GPU).
    func recordLookup(session: LookupSession, counts: LookupCounts, duration: Duration) {
        let model = session.model.name
        if let metrics = lookupMetrics[ObjectIdentifier(session)] {
            metrics.duration.record(duration)
            metrics.gpuDuration?.record(duration)
            for (t, table) in counts.tables.enumerated() where table.keys > 0 {
                metrics.keys[t].increment(by: Int64(table.keys))
                for (tier, hits) in table.tierHits.enumerated() where tier < metrics.tierHits[t].count {
                    metrics.tierHits[t][tier].increment(by: Int64(hits))
                }
                metrics.defaults[t].increment(by: Int64(table.defaults))
            }
            return
        }
        registry.makeDurationHistogram(descriptor: Self.lookupDuration, labels: [("model", model)], buckets: Self.latencyBuckets).record(duration)
        if let device = session.device {
            registry.makeDurationHistogram(descriptor: Self.gpuLookupDuration, labels: [("model", model), ("device", String(device))],
                                           buckets: Self.latencyBuckets).record(duration)
        }
        for (t, table) in counts.tables.enumerated() where table.keys > 0 {
            let name = session.model.tableNames[t]
            registry.makeCounter(descriptor: Self.keys, labels: [("model", model), ("table", name)]).increment(by: Int64(table.keys))
            for (tier, hits) in table.tierHits.enumerated() {
                registry.makeCounter(descriptor: Self.tierHits, labels: [("model", model), ("table", name), ("tier", Self.tierName(session, tier))])
                    .increment(by: Int64(hits))
            }
            registry.makeCounter(descriptor: Self.defaults, labels: [("model", model), ("table", name)]).increment(by: Int64(table.defaults))
        }
    }

    /// Counts one lookup of `requests` merged requests.
    func recordBatch(model: String, requests: Int) {
        if let metrics = requestMetrics[model] {
            metrics.batches.increment()
            metrics.batchRequests.record(Double(requests))
            return
        }
        registry.makeCounter(descriptor: Self.batches, labels: [("model", model)]).increment()
        registry.makeValueHistogram(descriptor: Self.batchRequests, labels: [("model", model)], buckets: Self.batchBuckets)
            .record(Double(requests))
    }

    /// The Prometheus text exposition, with the hit rates and the caches'
    /// counters brought up to date from the sessions' and caches' statistics.
    package func exposition() -> [UInt8] {
        updateHitRatios()
        updateCaches()
        updateUpdates()
        updateFaults()
        return registry.emitToBuffer()
    }

    /// Sets the tier and L1 hit ratios of each model and table from the
    /// sessions' totals, summed over a model's replicas.
    private func updateHitRatios() {
        struct Table {
            var keys = 0
            var tierHits: [String: Int] = [:]
            var cachedKeys = 0
            var cacheHits: [String: Int] = [:]
        }
        var tables: [String: [Table]] = [:]
        for session in sessions {
            let totals = session.statistics.totals
            let cached = session.groupCaches.contains { $0 != nil }
            var modelTables = tables[session.model.name] ?? [Table](repeating: Table(), count: session.model.tableNames.count)
            for (t, table) in totals.tables.enumerated() where table.keys > 0 {
                modelTables[t].keys += table.keys
                for (tier, hits) in table.tierHits.enumerated() {
                    modelTables[t].tierHits[Self.tierName(session, tier), default: 0] += hits
                }
                if cached, let hits = table.tierHits.first {
                    modelTables[t].cachedKeys += table.keys
                    modelTables[t].cacheHits[Self.tierName(session, 0), default: 0] += hits
                }
            }
            tables[session.model.name] = modelTables
        }
        let tableNames = Dictionary(sessions.map { ($0.model.name, $0.model.tableNames) }, uniquingKeysWith: { a, _ in a })
        for (model, modelTables) in tables {
            for (t, table) in modelTables.enumerated() where table.keys > 0 {
                let name = tableNames[model]![t]
                for (tier, hits) in table.tierHits {
                    registry.makeGauge(descriptor: Self.hitRatio, labels: [("model", model), ("table", name), ("tier", tier)])
                        .set(Double(hits) / Double(table.keys))
                }
                for (cache, hits) in table.cacheHits where table.cachedKeys > 0 {
                    registry.makeGauge(descriptor: Self.l1HitRatio, labels: [("model", model), ("table", name), ("cache", cache)])
                        .set(Double(hits) / Double(table.cachedKeys))
                }
            }
        }
    }

    /// Brings each L1 cache's hit ratio and counters up to date from a
    /// snapshot of its statistics.
    private func updateCaches() {
        var current: [(id: ObjectIdentifier, labels: [(String, String)], statistics: CacheStatistics)] = []
        for session in sessions {
            for (group, cache) in session.groupCaches.enumerated() {
                guard let cache else { continue }
                let labels = [("model", session.model.name), ("group", session.plan.groups[group].name),
                              ("device", Self.deviceLabel(cache)), ("cache", cache.kind)]
                current.append((ObjectIdentifier(cache), labels, cache.statistics))
            }
        }
        cacheSnapshots.withLock { previous in
            for (id, labels, statistics) in current {
                let last = previous[id] ?? CacheStatistics()
                previous[id] = statistics
                if statistics.keys > 0 {
                    registry.makeGauge(descriptor: Self.cacheHitRatio, labels: labels).set(statistics.hitRate)
                }
                for (descriptor, now, before) in [(Self.cacheInserts, statistics.inserts, last.inserts),
                                                  (Self.cacheEvictions, statistics.evictions, last.evictions),
                                                  (Self.cacheRefreshes, statistics.refreshes, last.refreshes)] {
                    registry.makeCounter(descriptor: descriptor, labels: labels).increment(by: Int64(max(0, now - before)))
                }
            }
        }
    }

    /// A cache's `device` label: its GPU, the GPUs of a row-wise sharded
    /// group's shards joined by `+` when they span several, or `cpu`.
    static func deviceLabel(_ cache: any EmbeddingCache) -> String {
        if let sharded = cache as? RowWiseShardedCache, sharded.device == nil {
            return Set(sharded.shards.compactMap(\.device)).sorted().map(String.init).joined(separator: "+")
        }
        return cache.device.map(String.init) ?? "cpu"
    }

    /// Brings the update consumers' counters up to date.
    private func updateUpdates() {
        let current = updates.map { ($0.countingName, $0.updateCounts) }
        updateSnapshots.withLock { previous in
            for (group, topics) in current {
                for (topic, counts) in topics {
                    let key = group + "\u{0}" + topic
                    let last = previous[key] ?? UpdateCounts()
                    previous[key] = counts
                    let labels = [("group", group), ("topic", topic)]
                    for (descriptor, now, before) in [(Self.updateMessages, counts.messages, last.messages),
                                                      (Self.updateKeys, counts.keys, last.keys),
                                                      (Self.updateMalformed, counts.malformed, last.malformed),
                                                      (Self.updateUnheld, counts.keysNotInGPUTables, last.keysNotInGPUTables)] {
                        registry.makeCounter(descriptor: descriptor, labels: labels).increment(by: Int64(max(0, now - before)))
                    }
                }
            }
        }
    }

    /// Brings the store tiers' fault counters up to date.
    private func updateFaults() {
        faultSnapshots.withLock { previous in
            for store in stores {
                guard let now = store.faults?.count else { continue }
                let before = previous[store.kind] ?? 0
                previous[store.kind] = now
                registry.makeCounter(descriptor: Self.tierFaults, labels: [("tier", store.kind)]).increment(by: Int64(max(0, now - before)))
            }
        }
    }

    /// The name of a session's tier, or its level from the top.
    private static func tierName(_ session: LookupSession, _ tier: Int) -> String {
        tier < session.tierNames.count ? session.tierNames[tier] : "tier\(tier)"
    }
}
