#if Kafka
import HPS
import Testing

@testable import HPSKafka

/// Publishing and consuming through librdkafka's mock cluster: real Kafka
/// protocol brokers on loopback TCP, started in this process.
@Suite(.serialized)
struct KafkaBrokerTests {
    /// The `update_source` section for `cluster`, with short timeouts for tests.
    func source(_ cluster: KafkaMockCluster) -> String {
        """
        {"type": "kafka_message_queue", "brokers": "\(cluster.bootstrapServers)", "poll_timeout_ms": 100,
         "metadata_refresh_interval_ms": 200, "max_batch_size": 64, "failure_backoff_ms": 20, "max_commit_interval": 8}
        """
    }

    /// Consumer settings that let a group's next member take over quickly
    /// after one leaves (librdkafka's mock cluster waits for the session timeout).
    let fastGroups = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")]

    /// Whether `condition` holds within `seconds`, checked every 50 ms (long: the
    /// whole suite on two cores can hold up this test's tasks for many seconds).
    func eventually(_ seconds: Double = 90, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }

    /// A mock cluster with the model's two topics (4 partitions each), and the model following it.
    func clusterAndModel() throws -> (KafkaMockCluster, UpdateFixture) {
        let cluster = try KafkaMockCluster(brokers: 1)
        for table in ["t0", "t1"] { try cluster.createTopic("hps_et.m.\(table)", partitions: 4) }
        return (cluster, try UpdateFixture(updateSource: source(cluster)))
    }

    /// Publishes new vectors for `keys` of table `table` of model `m`.
    @discardableResult
    func publish(_ publisher: UpdatePublisher, table: Int, keys: [Int64], vectors: [Float]) throws -> Int {
        let vecSize = vectors.count / max(1, keys.count)
        return try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in
                try publisher.publish(UpdateTopic(model: "m", table: "t\(table)"), keys: k, vectors: v, vecSize: vecSize)
            }
        }
    }

    /// The sum over partitions of `topics` of the offsets `group` committed (the messages it consumed).
    func committedMessages(_ cluster: KafkaMockCluster, group: String, topics: [String], source: UpdateSourceConfiguration) throws -> Int64 {
        let reader = try UpdateConsumer(brokers: cluster.bootstrapServers, group: group, patterns: ["^hps_et\\.none$"], source: source)
        defer { reader.close() }
        var total: Int64 = 0
        for topic in topics {
            total += try reader.committed(topic: topic, partitions: 4).values.filter { $0 >= 0 }.reduce(0, +)
        }
        return total
    }

    @Test("updates published to the brokers reach every lookup, and the consumer commits every message it applied")
    func publishConsumeCommit() async throws {
        let (cluster, fixture) = try clusterAndModel()
        let (work, warnings) = try UpdateConsumers.make(server: fixture.server, hostname: "test", settings: fastGroups)
        #expect(warnings.isEmpty)
        #expect(work.map(\.consumer.group) == ["hps.volatile.test"])
        let running = Task { try await work[0].run(blocking: .dedicatedThread) }
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers, keyGroups: 8, maxMessageBytes: 256)
        let (keys0, vectors0) = fixture.updates(table: 0, count: 100, seed: 5)
        let (keys1, vectors1) = fixture.updates(table: 1, count: 60, seed: 6)
        let messages = try publish(publisher, table: 0, keys: keys0, vectors: vectors0)
            + publish(publisher, table: 1, keys: keys1, vectors: vectors1)
        try publisher.flush()
        // 10 pairs of vec size 4 (12 of vec size 3) fit a 256-byte message; keys are split by group first.
        #expect(messages >= 10 + 5)
        #expect(publisher.delivered == messages)
        let visible = try await eventually {
            try fixture.lookup(table: 0, keys0) == vectors0 && fixture.lookup(table: 1, keys1) == vectors1
        }
        #expect(visible)
        running.cancel()
        try await running.value
        #expect(work[0].applier.counts.values.reduce(0) { $0 + $1.messages } == messages)
        #expect(try committedMessages(cluster, group: "hps.volatile.test", topics: ["hps_et.m.t0", "hps_et.m.t1"],
                                      source: fixture.server.configuration.updateSource) == Int64(messages))
    }

    @Test("each message goes to the partition of its keys' group, as HugeCTR's producer sends them")
    func partitionsByKeyGroup() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("hps_et.m.t0", partitions: 4)
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers, keyGroups: 6, maxMessageBytes: 1024)
        var random = SplitMix64(seed: 31)
        let keys = (0..<300).map { _ in Int64(bitPattern: random.next()) }
        let vectors = [Float](repeating: 1, count: keys.count * 4)
        let messages = try publish(publisher, table: 0, keys: keys, vectors: vectors)
        try publisher.flush()
        let consumer = try UpdateConsumer(brokers: cluster.bootstrapServers, group: "partitions",
                                          patterns: ["^hps_et\\.m\\..+$"], source: UpdateSourceConfiguration())
        defer { consumer.close() }
        var received: [ReceivedUpdate] = []
        let deadline = ContinuousClock.now + .seconds(90)
        while received.count < messages && ContinuousClock.now < deadline {
            received += consumer.poll(maxMessages: 100, timeoutMs: 200).messages
        }
        #expect(received.count == messages)
        let groups = KeyGroups(count: 6)
        var seen: [Int64] = []
        for message in received {
            let update = try message.payload.withUnsafeBytes { try UpdateMessage(decoding: $0, vecSize: 4) }
            let messageGroups = Set(update.keys.map { groups.group(of: $0) })
            #expect(messageGroups.count == 1, "one key group per message")
            #expect(messageGroups.allSatisfy { KeyGroups.partition(ofGroup: $0, partitions: 4) == message.partition })
            seen += update.keys
        }
        #expect(seen.sorted() == keys.sorted())
    }

    @Test("a consumer started again resumes from the committed offsets (a persisting store's); a hash map's replays from the start")
    func resumes() async throws {
        let (cluster, fixture) = try clusterAndModel()
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers, keyGroups: 4)
        let (keys, first) = fixture.updates(table: 0, count: 50, seed: 8)
        let second = first.map { $0 + 10 }
        let firstMessages = try publish(publisher, table: 0, keys: keys, vectors: first)
        try publisher.flush()
        let (work, _) = try UpdateConsumers.make(server: fixture.server, hostname: "test", settings: fastGroups)
        let running = Task { try await work[0].run(blocking: .dedicatedThread) }
        #expect(try await eventually { try fixture.lookup(table: 0, keys) == first })
        running.cancel()
        try await running.value
        #expect(work[0].applier.counts["hps_et.m.t0"]?.messages == firstMessages)

        let secondMessages = try publish(publisher, table: 0, keys: keys, vectors: second)
        try publisher.flush()
        // A consumer of the same group for a store that persists resumes where the first committed.
        let source = fixture.server.configuration.updateSource
        let resuming = UpdateConsumerWork(
            consumer: try UpdateConsumer(brokers: cluster.bootstrapServers, group: "hps.volatile.test",
                                         patterns: ["^hps_et\\.m\\..+$"], source: source, replayOnStart: false, settings: fastGroups),
            applier: UpdateApplier(server: fixture.server), source: source)
        let rerun = Task { try await resuming.run(blocking: .dedicatedThread) }
        #expect(try await eventually { try fixture.lookup(table: 0, keys) == second })
        rerun.cancel()
        try await rerun.value
        #expect(resuming.applier.counts["hps_et.m.t0"]?.messages == secondMessages)

        // The hash map's consumer, made as hps serve makes it, replays every message, in order.
        let (replaying, _) = try UpdateConsumers.make(server: fixture.server, hostname: "test", settings: fastGroups)
        let replay = Task { try await replaying[0].run(blocking: .dedicatedThread) }
        #expect(try await eventually { replaying[0].applier.counts["hps_et.m.t0"]?.messages == firstMessages + secondMessages })
        replay.cancel()
        try await replay.value
        #expect(try fixture.lookup(table: 0, keys) == second)
    }

    @Test("a malformed message on the brokers is counted, skipped and committed past; the updates after it apply")
    func malformedOnTheWire() async throws {
        let (cluster, fixture) = try clusterAndModel()
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers, keyGroups: 1)
        // Key group 0 goes to partition 0, so the three messages keep their order.
        try publisher.publish(rawMessage: Array("not an update".utf8), to: "hps_et.m.t0")
        try publisher.publish(rawMessage: UpdateMessage(keys: [9], vectors: [1, 2, 3], vecSize: 3).encoded(), to: "hps_et.m.t0")
        let good = try publish(publisher, table: 0, keys: [9], vectors: [4, 3, 2, 1])
        try publisher.flush()
        let (work, _) = try UpdateConsumers.make(server: fixture.server, hostname: "test", settings: fastGroups)
        let running = Task { try await work[0].run(blocking: .dedicatedThread) }
        #expect(try await eventually { try fixture.lookup(table: 0, [9]) == [4, 3, 2, 1] })
        running.cancel()
        try await running.value
        let counts = work[0].applier.counts["hps_et.m.t0"]
        #expect(counts?.malformed == 2)
        #expect(counts?.messages == good)
        #expect(try committedMessages(cluster, group: "hps.volatile.test", topics: ["hps_et.m.t0"],
                                      source: fixture.server.configuration.updateSource) == Int64(2 + good))
    }

    @Test("with the broker down, lookups go on and nothing is lost: the updates apply once it is back")
    func brokerDownAndUp() async throws {
        let (cluster, fixture) = try clusterAndModel()
        let (work, _) = try UpdateConsumers.make(server: fixture.server, hostname: "test", settings: fastGroups)
        let running = Task { try await work[0].run(blocking: .dedicatedThread) }
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers, keyGroups: 4)
        let (early, earlyVectors) = fixture.updates(table: 1, count: 20, seed: 21)
        try publish(publisher, table: 1, keys: early, vectors: earlyVectors)
        try publisher.flush()
        #expect(try await eventually { try fixture.lookup(table: 1, early) == earlyVectors })

        try cluster.setBroker(1, up: false)
        let (late, lateVectors) = fixture.updates(table: 1, count: 20, seed: 22)
        try publish(publisher, table: 1, keys: late, vectors: lateVectors)
        // Lookups are answered while the broker is away, from what the tiers hold.
        let before = ContinuousClock.now
        #expect(try fixture.lookup(table: 1, early) == earlyVectors)
        // Not a speed check: a lookup that waited on the broker would take
        // its timeouts (10 s and more); a loaded CI machine may take a second.
        #expect(ContinuousClock.now - before < .seconds(5))
        try await Task.sleep(for: .milliseconds(500))
        try cluster.setBroker(1, up: true)
        try publisher.flush()
        #expect(try await eventually { try fixture.lookup(table: 1, late) == lateVectors })
        running.cancel()
        try await running.value
    }
}
#endif
