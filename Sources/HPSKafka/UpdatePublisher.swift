#if Kafka
import CRdKafka
import HPS

/// Posts embedding updates to Kafka in HugeCTR's format, as HugeCTR's
/// `KafkaMessageSink` does: one topic per table (`hps_et.<model>.<table>`),
/// keys split by key group (`KeyGroups`), each group's keys in messages of
/// at most `maxMessageBytes`, each message on its group's partition;
/// idempotent delivery, so a retried send is not stored twice.
///
/// Thread safety: `publish` and `flush` may be called from any thread.
public final class UpdatePublisher: @unchecked Sendable {
    // @unchecked Sendable: librdkafka's producer and topic handles are thread-safe;
    // `topics` is guarded by `lock`, and `deliveries` is a Locked.
    private let handle: OpaquePointer
    private let lock = Locked([String: OpaquePointer]())
    private let deliveries: Unmanaged<DeliveryCounts>
    /// The key groups keys are split by.
    public let keyGroups: KeyGroups
    /// The largest message, in bytes (header and pairs).
    public let maxMessageBytes: Int

    /// A producer for `brokers` (comma-separated `host:port`).
    /// - Parameters:
    ///   - keyGroups: key groups to split keys by (at least 1).
    ///   - maxMessageBytes: the largest message (at least one pair must fit).
    ///   - settings: further librdkafka settings, applied last.
    public init(brokers: String, keyGroups: Int = 64, maxMessageBytes: Int = 1 << 20,
                settings: [(String, String)] = []) throws(KafkaError) {
        precondition(keyGroups >= 1, "there must be at least one key group")
        self.keyGroups = KeyGroups(count: keyGroups)
        self.maxMessageBytes = maxMessageBytes
        let conf = try makeKafkaConf([
            ("bootstrap.servers", brokers),
            ("message.max.bytes", String(maxMessageBytes + 1024)),
            ("enable.idempotence", "true"),
            ("compression.codec", "none"),
            ("queue.buffering.max.ms", "5"),
            // Messages carry no key; without this, librdkafka gives keyless messages
            // a "sticky" partition and never calls the partitioner below.
            ("sticky.partitioning.linger.ms", "0"),
        ] + settings)
        let counts = Unmanaged.passRetained(DeliveryCounts())
        rd_kafka_conf_set_opaque(conf, counts.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            let counts = Unmanaged<DeliveryCounts>.fromOpaque(opaque).takeUnretainedValue()
            let error = message.pointee.err
            counts.state.withLock { state in
                if error == RD_KAFKA_RESP_ERR_NO_ERROR {
                    state.delivered += 1
                } else {
                    state.failed += 1
                    state.lastFailure = String(cString: rd_kafka_err2str(error))
                }
            }
        }
        do {
            handle = try makeKafkaClient(RD_KAFKA_PRODUCER, conf: conf, what: "producer")
        } catch {
            counts.release()
            throw error
        }
        deliveries = counts
    }

    deinit {
        _ = rd_kafka_flush(handle, 10_000)
        lock.withLock { topics in
            for topic in topics.values { rd_kafka_topic_destroy(topic) }
        }
        rd_kafka_destroy(handle)
        deliveries.release()
    }

    /// Posts new vectors for `keys` of a table; delivery happens in the
    /// background (`flush` waits for it and reports failures).
    /// - Parameters:
    ///   - topic: the table's topic.
    ///   - keys: (n) keys.
    ///   - vectors: (n × vecSize) floats, row i for `keys[i]`.
    /// - Returns: the messages posted.
    @discardableResult
    public func publish(_ topic: UpdateTopic, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                        vecSize: Int) throws(KafkaError) -> Int {
        precondition(vecSize > 0 && vectors.count == keys.count * vecSize, "vectors must hold keys.count × vecSize floats")
        let pairBytes = 8 + vecSize * 4
        let perMessage = (maxMessageBytes - UpdateMessage.headerBytes) / pairBytes
        guard perMessage >= 1 else {
            throw .operation(what: "publish to \(topic)", reason: "one key and its \(vecSize) floats (\(pairBytes + 8) bytes with the header) exceed the largest message, \(maxMessageBytes) bytes")
        }
        let handle = try self.topic(topic.description)
        // Keys by group, each group in order of the keys.
        var byGroup = [[Int]](repeating: [], count: keyGroups.count)
        for (i, key) in keys.enumerated() { byGroup[keyGroups.group(of: key)].append(i) }
        var messages = 0
        let rows = UnsafeRawPointer(vectors.baseAddress!)
        for (group, indices) in byGroup.enumerated() where !indices.isEmpty {
            var start = 0
            while start < indices.count {
                let end = min(start + perMessage, indices.count)
                let part = indices[start..<end]
                let bytes = UpdateMessage.encode(count: part.count, vecSize: vecSize, key: { keys[part[part.startIndex + $0]] },
                                                 row: { rows.advanced(by: part[part.startIndex + $0] * vecSize * 4) })
                try produce(handle, bytes, group: group, topic: topic.description)
                messages += 1
                start = end
            }
        }
        rd_kafka_poll(self.handle, 0)
        return messages
    }

    /// Posts `bytes` as they are, as one message to `topic` on the partition
    /// of key group `group` (for tests of malformed messages, and for
    /// messages prepared elsewhere).
    package func publish(rawMessage bytes: [UInt8], to topic: String, group: Int = 0) throws(KafkaError) {
        try produce(try self.topic(topic), bytes, group: group, topic: topic)
        rd_kafka_poll(handle, 0)
    }

    /// Waits until every message posted so far is delivered or failed.
    /// - Throws: `KafkaError.undelivered` when any failed since the last flush,
    ///   or `.operation` when they are not all settled within `timeoutMs`.
    public func flush(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        let status = rd_kafka_flush(handle, timeoutMs)
        let failures = deliveries.takeUnretainedValue().state.withLock { state in
            defer { state.failed = 0; state.lastFailure = nil }
            return (state.failed, state.lastFailure)
        }
        if failures.0 > 0 { throw .undelivered(messages: failures.0, reason: failures.1 ?? "unknown") }
        if status != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw .operation(what: "flush", reason: "\(rd_kafka_outq_len(handle)) message(s) still queued after \(timeoutMs) ms: \(kafkaReason(status))")
        }
    }

    /// Messages delivered so far.
    public var delivered: Int { deliveries.takeUnretainedValue().state.withLock { $0.delivered } }

    /// The topic handle of `name`, made on first use with HugeCTR's partitioner.
    private func topic(_ name: String) throws(KafkaError) -> OpaquePointer {
        let result: OpaquePointer? = lock.withLock { topics in
            if let topic = topics[name] { return topic }
            let conf = rd_kafka_topic_conf_new()!
            // The message's opaque carries its key group; the partition is the group's.
            rd_kafka_topic_conf_set_partitioner_cb(conf) { _, _, _, partitions, _, group in
                KeyGroups.partition(ofGroup: Int(bitPattern: group), partitions: partitions)
            }
            // rd_kafka_topic_new takes over conf, also when it fails.
            guard let topic = rd_kafka_topic_new(handle, name, conf) else { return nil }
            topics[name] = topic
            return topic
        }
        guard let result else { throw .operation(what: "topic \(name)", reason: kafkaReason(rd_kafka_last_error())) }
        return result
    }

    /// Posts one message to its group's partition, waiting while the queue is full.
    private func produce(_ topic: OpaquePointer, _ bytes: [UInt8], group: Int, topic name: String) throws(KafkaError) {
        while true {
            let status = bytes.withUnsafeBytes { payload in
                rd_kafka_produce(topic, -1 /* RD_KAFKA_PARTITION_UA */, RD_KAFKA_MSG_F_COPY,
                                 UnsafeMutableRawPointer(mutating: payload.baseAddress), payload.count,
                                 nil, 0, UnsafeMutableRawPointer(bitPattern: group))
            }
            if status == 0 { return }
            let error = rd_kafka_last_error()
            guard error == RD_KAFKA_RESP_ERR__QUEUE_FULL else {
                throw .operation(what: "publish to \(name)", reason: kafkaReason(error))
            }
            rd_kafka_poll(handle, 100)
        }
    }
}

/// Delivery reports of a producer, counted by librdkafka's callback.
final class DeliveryCounts: Sendable {
    struct State {
        var delivered = 0
        var failed = 0
        var lastFailure: String?
    }
    let state = Locked(State())
}
#endif
