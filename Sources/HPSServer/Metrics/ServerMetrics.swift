public import HPS
public import Prometheus

/// The server's Prometheus metrics, served on the metrics port at `/metrics`.
///
/// Per model: inference requests and failures (by HTTP status), request and
/// lookup latency histograms; per model and table: keys looked up, keys
/// answered by each tier and with the default value, and the hit rate of
/// each tier since start (a fused lookup split by its member tables' keys).
public final class ServerMetrics: Sendable {
    /// The registry the metrics live in.
    public let registry = PrometheusCollectorRegistry()
    private let sessions: [LookupSession]
    private let tierNames: [String]
    /// Each served session's counters, made once: a registry look-up per
    /// request and table costs more than the lookup of one sample.
    private let lookupMetrics: [String: LookupMetrics]
    private let requestMetrics: [String: RequestMetrics]
    private static let latencyBuckets: [Duration] = [
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
    private static var lookupDuration: MetricNameDescriptor { name("lookup_duration", "seconds", "Time of the embedding lookup alone") }
    private static var keys: MetricNameDescriptor { name("keys_looked_up", "total", "Keys looked up, per table") }
    private static var tierHits: MetricNameDescriptor { name("tier_hits", "total", "Keys answered by each tier, per table") }
    private static var defaults: MetricNameDescriptor { name("default_value_keys", "total", "Keys found in no tier, answered with the table's default value, per table") }
    private static var batches: MetricNameDescriptor { name("lookup_batches", "total", "Lookups made, each for one or more merged requests") }
    private static var batchRequests: MetricNameDescriptor { name("lookup_batch", "requests", "Requests merged into one lookup (dynamic batching)") }
    private static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    private static var hitRatio: MetricNameDescriptor { name("tier_hit", "ratio", "Share of a table's keys looked up since start that each tier answered") }

    /// Metrics for the sessions served.
    /// - Parameter tierNames: the tiers' names, top first (e.g. the stores' kinds).
    /// - Parameter modelNames: every name requests may be counted under
    ///   (the sessions' models and other served models); others are counted too,
    ///   only more slowly.
    public init(sessions: [LookupSession], tierNames: [String], modelNames: [String] = []) {
        self.sessions = sessions
        self.tierNames = tierNames
        let registry = self.registry
        var lookupMetrics: [String: LookupMetrics] = [:]
        var requestMetrics: [String: RequestMetrics] = [:]
        func tierName(_ tier: Int) -> String { tier < tierNames.count ? tierNames[tier] : "tier\(tier)" }
        for session in sessions {
            let model = session.model.name
            let tiers = session.statistics.totals.tierHits.count
            lookupMetrics[model] = LookupMetrics(
                duration: registry.makeDurationHistogram(descriptor: Self.lookupDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                keys: session.model.tableNames.map { registry.makeCounter(descriptor: Self.keys, labels: [("model", model), ("table", $0)]) },
                tierHits: session.model.tableNames.map { table in
                    (0..<tiers).map { registry.makeCounter(descriptor: Self.tierHits, labels: [("model", model), ("table", table), ("tier", tierName($0))]) }
                },
                defaults: session.model.tableNames.map { registry.makeCounter(descriptor: Self.defaults, labels: [("model", model), ("table", $0)]) })
        }
        for model in Set(sessions.map(\.model.name) + modelNames) {
            requestMetrics[model] = RequestMetrics(
                requests: registry.makeCounter(descriptor: Self.requests, labels: [("model", model)]),
                duration: registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("model", model)], buckets: Self.latencyBuckets),
                batches: registry.makeCounter(descriptor: Self.batches, labels: [("model", model)]),
                batchRequests: registry.makeValueHistogram(descriptor: Self.batchRequests, labels: [("model", model)], buckets: Self.batchBuckets))
        }
        self.lookupMetrics = lookupMetrics
        self.requestMetrics = requestMetrics
    }

    /// One session's counters.
    private struct LookupMetrics: Sendable {
        let duration: DurationHistogram
        let keys: [Counter]
        let tierHits: [[Counter]]
        let defaults: [Counter]
    }

    /// One served model's request counters.
    private struct RequestMetrics: Sendable {
        let requests: Counter
        let duration: DurationHistogram
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

    /// Counts one lookup.
    func recordLookup(session: LookupSession, counts: LookupCounts, duration: Duration) {
        let model = session.model.name
        if let metrics = lookupMetrics[model] {
            metrics.duration.record(duration)
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
        for (t, table) in counts.tables.enumerated() where table.keys > 0 {
            let name = session.model.tableNames[t]
            registry.makeCounter(descriptor: Self.keys, labels: [("model", model), ("table", name)]).increment(by: Int64(table.keys))
            for (tier, hits) in table.tierHits.enumerated() {
                registry.makeCounter(descriptor: Self.tierHits, labels: [("model", model), ("table", name), ("tier", tierName(tier))])
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

    /// The Prometheus text exposition, with the hit rates brought up to date.
    public func exposition() -> [UInt8] {
        for session in sessions {
            for (t, table) in session.statistics.totals.tables.enumerated() where table.keys > 0 {
                for tier in table.tierHits.indices {
                    registry.makeGauge(descriptor: Self.hitRatio, labels: [("model", session.model.name),
                                                                         ("table", session.model.tableNames[t]), ("tier", tierName(tier))])
                        .set(table.hitRatio(tier: tier))
                }
            }
        }
        return registry.emitToBuffer()
    }

    /// The tier's name, or its level from the top.
    func tierName(_ tier: Int) -> String {
        tier < tierNames.count ? tierNames[tier] : "tier\(tier)"
    }
}
