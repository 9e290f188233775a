#if Kafka
import CRdKafka
public import HPS

/// A Kafka consumer of update topics with HugeCTR's settings
/// (`KafkaMessageSource`): offsets are committed by the caller after it
/// applied the messages (never automatically), a new group reads each topic
/// from its start, and topics are matched by regular expressions.
///
/// Beyond HugeCTR, a consumer for a store that does not outlive the process
/// (the in-process hash maps, filled again from the model files at start)
/// replays each partition from its earliest message the first time the
/// process is assigned it (`replayOnStart`), so that a restarted server
/// holds every update still retained by the brokers; HugeCTR's consumer
/// resumes from the committed offset there and serves the files' stale
/// vectors until the keys are updated again. A consumer for a store that
/// persists (RocksDB, a Redis Cluster) resumes from the committed offsets.
///
/// Thread safety: one thread polls and commits at a time (the consumer
/// loop); `close` may be called from any thread once that loop has stopped.
public final class UpdateConsumer: @unchecked Sendable {
    // @unchecked Sendable: the handle is used by one loop at a time (see above).
    private let handle: OpaquePointer
    private var closed = false
    private let assignments: Unmanaged<Assignments>
    /// The consumer group.
    public let group: String

    /// A consumer in `group` of the topics matching `patterns` (regular
    /// expressions, each starting with `^`), with `source`'s settings.
    public init(brokers: String, group: String, patterns: [String], source: UpdateSourceConfiguration,
                replayOnStart: Bool = false, settings: [(String, String)] = []) throws(KafkaError) {
        precondition(!patterns.isEmpty, "a consumer needs at least one topic pattern")
        self.group = group
        let conf = try makeKafkaConf([
            ("bootstrap.servers", brokers),
            ("group.id", group),
            ("message.max.bytes", String(source.receiveBufferSize + 1024)),
            ("topic.metadata.refresh.interval.ms", String(max(10, source.metadataRefreshIntervalMs))),
            // HugeCTR sets 30 s; 10 s lets a group (re)balance sooner after a member
            // went away without leaving (a server killed), which a group of one
            // member waits for.
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "true"),
            ("enable.partition.eof", "true"),
            ("allow.auto.create.topics", "true"),
            ("auto.offset.reset", "smallest"),
            ("reconnect.backoff.ms", String(max(1, source.failureBackoffMs))),
        ] + settings)
        let assignments = Unmanaged.passRetained(Assignments(replay: replayOnStart))
        rd_kafka_conf_set_opaque(conf, assignments.toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { handle, error, partitions, opaque in
            guard let handle, let partitions, let opaque else { return }
            if error == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                Unmanaged<Assignments>.fromOpaque(opaque).takeUnretainedValue().firstAssignment(partitions)
                rd_kafka_assign(handle, partitions)
            } else {
                rd_kafka_assign(handle, nil)
            }
        }
        do {
            handle = try makeKafkaClient(RD_KAFKA_CONSUMER, conf: conf, what: "consumer of group \(group)")
        } catch {
            assignments.release()
            throw error
        }
        self.assignments = assignments
        rd_kafka_poll_set_consumer(handle)
        let list = rd_kafka_topic_partition_list_new(Int32(patterns.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for pattern in patterns { rd_kafka_topic_partition_list_add(list, pattern, -1) }
        let status = rd_kafka_subscribe(handle, list)
        guard status == RD_KAFKA_RESP_ERR_NO_ERROR else {
            rd_kafka_destroy(handle)
            assignments.release()
            throw .operation(what: "subscription of group \(group) to \(patterns.joined(separator: ", "))", reason: kafkaReason(status))
        }
    }

    deinit {
        close()
        rd_kafka_destroy(handle)
        assignments.release()
    }

    /// Leaves the group (its partitions go to the group's other members).
    public func close() {
        guard !closed else { return }
        closed = true
        _ = rd_kafka_consumer_close(handle)
    }

    /// What one poll returned.
    public struct Poll: Sendable {
        /// Messages with a value, in the order received.
        public var messages: [ReceivedUpdate] = []
        /// Errors the client reported (a broker down, a topic gone); each a sentence.
        public var errors: [String] = []
        /// Whether the poll ended because no more messages were waiting.
        public var idle = false
    }

    /// Receives up to `maxMessages` messages: waits up to `timeoutMs` for the
    /// first, then takes those already waiting.
    public func poll(maxMessages: Int, timeoutMs: Int32) -> Poll {
        var result = Poll()
        var wait = timeoutMs
        while result.messages.count < maxMessages {
            guard let message = rd_kafka_consumer_poll(handle, wait) else {
                result.idle = true
                break
            }
            defer { rd_kafka_message_destroy(message) }
            wait = 0
            let m = message.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                result.errors.append(String(cString: rd_kafka_err2str(m.err)))
                continue
            }
            // A tombstone carries no value: nothing to apply.
            guard let payload = m.payload, let rkt = m.rkt else { continue }
            let bytes = [UInt8](UnsafeRawBufferPointer(start: payload, count: m.len))
            result.messages.append(ReceivedUpdate(topic: String(cString: rd_kafka_topic_name(rkt)),
                                                  partition: m.partition, offset: m.offset, payload: bytes))
        }
        return result
    }

    /// Commits, for each topic and partition of `messages`, the offset after
    /// the last of them, and waits for the broker's answer.
    public func commit(_ messages: [ReceivedUpdate]) throws(KafkaError) {
        var offsets = CommitOffsets()
        offsets.add(messages)
        try commit(offsets)
    }

    /// Commits `offsets` and waits for the broker's answer.
    public func commit(_ offsets: CommitOffsets) throws(KafkaError) {
        let next = offsets.next
        guard !next.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(next.values.reduce(0) { $0 + $1.count }))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (topic, partitions) in next {
            for (partition, offset) in partitions {
                rd_kafka_topic_partition_list_add(list, topic, partition)!.pointee.offset = offset
            }
        }
        let status = rd_kafka_commit(handle, list, 0)
        guard status == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .operation(what: "commit of group \(group)", reason: kafkaReason(status))
        }
    }

    /// The committed offset of each partition of `topic` this consumer was
    /// assigned, from the broker.
    public func committed(topic: String, partitions: Int32, timeoutMs: Int32 = 10_000) throws(KafkaError) -> [Int32: Int64] {
        let list = rd_kafka_topic_partition_list_new(partitions)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in 0..<partitions { rd_kafka_topic_partition_list_add(list, topic, partition) }
        let status = rd_kafka_committed(handle, list, timeoutMs)
        guard status == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .operation(what: "reading the committed offsets of \(topic)", reason: kafkaReason(status))
        }
        var result: [Int32: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            result[element.partition] = element.offset
        }
        return result
    }
}

/// The offsets to commit after applied messages: per topic and partition, the
/// offset after the last message applied.
public struct CommitOffsets: Sendable, Equatable {
    /// Per topic and partition, the next offset.
    public private(set) var next: [String: [Int32: Int64]] = [:]
    /// Messages added since these offsets were made.
    public private(set) var messages = 0

    public init() {}

    /// Whether no message was added.
    public var isEmpty: Bool { messages == 0 }

    /// Moves each message's partition past it.
    public mutating func add(_ received: [ReceivedUpdate]) {
        for message in received {
            next[message.topic, default: [:]][message.partition] = max(next[message.topic]?[message.partition] ?? 0, message.offset + 1)
        }
        messages += received.count
    }
}

/// The partitions a consumer was assigned in this process: with `replay`,
/// the first assignment of each starts at its earliest message.
final class Assignments: Sendable {
    let replay: Bool
    private let seen = Locked(Set<String>())

    init(replay: Bool) { self.replay = replay }

    /// Sets the start of each partition of `partitions` assigned for the first time.
    func firstAssignment(_ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        guard replay else { return }
        seen.withLock { seen in
            for i in 0..<Int(partitions.pointee.cnt) {
                let element = partitions.pointee.elems.advanced(by: i)
                let name = "\(String(cString: element.pointee.topic))/\(element.pointee.partition)"
                if seen.insert(name).inserted { element.pointee.offset = -2 /* RD_KAFKA_OFFSET_BEGINNING */ }
            }
        }
    }
}
#endif
