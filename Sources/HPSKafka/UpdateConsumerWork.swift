#if Kafka
public import HPS
public import Logging
import Glibc

/// One consumer's loop, as background work of `hps serve`: polls batches of
/// up to `max_batch_size` messages, applies each batch (retrying a tier that
/// refuses it every `failure_backoff_ms`, without polling further), and
/// commits the offsets of applied messages when the topics go quiet or
/// every `max_commit_interval` messages, so that no update is lost
/// (at-least-once; applying one twice is harmless). A broker that is down
/// is retried by librdkafka and logged; lookups never wait for it.
///
/// The loop blocks in librdkafka's poll, so it runs on a thread of its own
/// for as long as it runs; cancelling the task stops it within one poll
/// timeout, after committing what it applied.
public struct UpdateConsumerWork: BackgroundWork, UpdateCounting {
    /// The consumer.
    public let consumer: UpdateConsumer
    /// Where its messages go.
    public let applier: UpdateApplier
    /// Batch size, timeouts and back-off.
    public let source: UpdateSourceConfiguration
    private let logger: Logger

    /// The loop of `consumer` into `applier`.
    public init(consumer: UpdateConsumer, applier: UpdateApplier, source: UpdateSourceConfiguration,
                logger: Logger = Logger(label: "hps.updates")) {
        self.consumer = consumer
        self.applier = applier
        self.source = source
        self.logger = logger
    }

    /// `kafka consumer <group>`.
    public var name: String { "kafka consumer \(consumer.group)" }

    /// The consumer's group.
    public var countingName: String { consumer.group }

    /// The applier's counts per topic.
    public var updateCounts: [String: UpdateCounts] { applier.counts }

    /// Runs the loop on a thread of its own until the task is cancelled.
    public func run(blocking: BlockingRunner) async throws {
        let stop = Locked(false)
        await withTaskCancellationHandler {
            await BlockingRunner.dedicatedThread.run { [self] in loop(until: stop) }
        } onCancel: {
            stop.withLock { $0 = true }
        }
    }

    /// Polls, applies and commits until `stop` is set.
    func loop(until stop: Locked<Bool>) {
        let backoff = UInt32(max(1, source.failureBackoffMs)) * 1000
        var offsets = CommitOffsets()
        var lastError: String?
        func stopping() -> Bool { stop.withLock { $0 } }
        while !stopping() {
            let poll = consumer.poll(maxMessages: source.maxBatchSize, timeoutMs: Int32(clamping: source.pollTimeoutMs))
            for error in poll.errors where error != lastError {
                logger.warning("\(name): \(error); retrying every \(source.failureBackoffMs) ms")
                lastError = error
            }
            if poll.messages.isEmpty && !poll.errors.isEmpty { usleep(backoff) }
            if !poll.messages.isEmpty {
                var done = false
                while !done {
                    do throws(UpdateError) {
                        try applier.apply(poll.messages)
                        done = true
                        lastError = nil
                    } catch {
                        if error.description != lastError {
                            logger.error("\(name): \(error.description); applying the batch again every \(source.failureBackoffMs) ms")
                            lastError = error.description
                        }
                        if stopping() { break }
                        usleep(backoff)
                    }
                }
                if !done { break }
                offsets.add(poll.messages)
            }
            if !offsets.isEmpty && (poll.idle || offsets.messages >= source.maxCommitInterval) {
                if commit(offsets) { offsets = CommitOffsets() } else { usleep(backoff) }
            }
        }
        if !offsets.isEmpty { _ = commit(offsets) }
        consumer.close()
    }

    /// Commits the applied messages' offsets; false (and logged) when the broker did not take them.
    private func commit(_ offsets: CommitOffsets) -> Bool {
        do throws(KafkaError) {
            try consumer.commit(offsets)
            return true
        } catch {
            logger.warning("\(name): \(error.description); the applied updates are committed again later")
            return false
        }
    }
}

/// The consumers `hps serve` runs for a configuration's `update_source`, as
/// HugeCTR's parameter server makes them: one per store that has a non-empty
/// `update_filters`, in group `hps.volatile` or `hps.persistent`, with
/// `.<hostname>` appended for a store that is not shared between servers
/// (the hash maps and RocksDB; a Redis Cluster is shared). The consumer of an
/// in-process hash map replays each topic from its start when the process
/// starts (`UpdateConsumer.replayOnStart`).
public enum UpdateConsumers {
    /// The consumers of `server`'s configuration (none when its
    /// `update_source.type` is `null`), and the warnings about its filters.
    /// - Parameter settings: further librdkafka settings for every consumer.
    public static func make(server: HierarchicalParameterServer, logger: Logger = Logger(label: "hps.updates"),
                            hostname: String = UpdateConsumers.hostname,
                            settings: [(String, String)] = []) throws(KafkaError) -> (work: [UpdateConsumerWork], warnings: [String]) {
        let configuration = server.configuration
        let source = configuration.updateSource
        guard source.type == .kafkaMessageQueue else { return ([], []) }
        let models = configuration.models.map(\.name)
        var work: [UpdateConsumerWork] = []
        var warnings: [String] = []
        // The L1 caches are updated by the consumer of the store right below them.
        let volatileOn = server.volatileStore != nil
        // (group, filters, shared between servers, survives a restart, targets)
        var stores: [(group: String, filters: [String], shared: Bool, persists: Bool, targets: UpdateTargets)] = []
        if volatileOn {
            let redis = configuration.volatileDatabase.type == .redisCluster
            stores.append(("hps.volatile", configuration.volatileDatabase.updateFilters, redis, redis, [.volatile, .caches]))
        }
        if server.persistentStore != nil {
            stores.append(("hps.persistent", configuration.persistentDatabase.updateFilters, false, true,
                           volatileOn ? .persistent : [.persistent, .caches]))
        }
        for store in stores where !store.filters.isEmpty {
            let (patterns, filterWarnings) = UpdateTopic.subscriptions(filters: store.filters, models: models)
            warnings += filterWarnings
            let group = store.shared ? store.group : "\(store.group).\(hostname)"
            let consumer = try UpdateConsumer(brokers: source.brokers, group: group, patterns: patterns, source: source,
                                              replayOnStart: !store.persists, settings: settings)
            let applier = UpdateApplier(server: server, targets: store.targets, logger: logger)
            work.append(UpdateConsumerWork(consumer: consumer, applier: applier, source: source, logger: logger))
        }
        return (work, warnings)
    }

    /// This machine's host name.
    public static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
#endif
