#if Kafka
import HPSDemo
import Glibc
import HPS
import HPSKafka
import Logging

/// `hps bench --update-latency`: how long an online update takes from the
/// producer's call to a lookup that returns it, while updates and lookups
/// run at steady rates, through a real Kafka-protocol broker (librdkafka's
/// mock cluster, in process, over loopback TCP) and the server's consumer
/// (`UpdateConsumers.make`, HugeCTR's settings) into the hash map.
///
/// Every 10 ms the producer posts one batch (`updatesPerSecond` / 100 keys of
/// vec 128 of a table of 100,000 keys) in which a probe key's vector holds
/// the batch's sequence number. A lookup thread looks up one sample's 26 keys
/// (the probe among them) `lookupsPerSecond` times a second through the
/// model's session; a batch is visible at the first lookup that returns its
/// number (or a later one). Beside them, a plain consumer of its own group
/// reads the same topic and notes when each probe arrives: Kafka's delivery
/// alone, the floor under the server's figure. Latencies are measured after
/// a warm-up (the consumer groups joining), over `seconds`.
enum UpdateLatencyBenchmark {
    static let vecSize = 128, tableKeys = 100_000, batchesPerSecond = 100
    /// Both consumers' extra settings: groups that form quickly, and fetches
    /// answered within 10 ms (the mock broker holds a fetch that finds no
    /// data for `fetch.wait.max.ms`, 500 ms by default, even when data
    /// arrives meanwhile; a real broker answers as soon as data arrives).
    static let consumerSettings = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500"), ("fetch.wait.max.ms", "10")]

    static func run(updatesPerSecond: Int, lookupsPerSecond: Int, seconds: Double, markdown: Bool) throws {
        let directory = try TemporaryDirectory(prefix: "hps-bench-update-latency")
        defer { directory.remove() }
        let cluster = try KafkaMockCluster(brokers: 1)
        let topic = UpdateTopic(model: "m", table: "t0")
        try cluster.createTopic(topic.description, partitions: 8)
        let model = try OneTableBenchmarkModel(
            folder: directory.path, keys: tableKeys, vecSize: vecSize, stride: 3, offset: 1, seed: 5,
            stores: #""volatile_db": {"type": "hash_map"}, "update_source": {"type": "kafka_message_queue", "brokers": "\#(cluster.bootstrapServers)"}"#,
            keysPerSample: 26)
        let keys = model.keys
        let server = try model.server()
        let session = try server.session(model: "m")
        var logger = Logger(label: "hps.bench")
        logger.logLevel = .error
        let (work, _) = try UpdateConsumers.make(server: server, logger: logger, hostname: "bench",
                                                 settings: Self.consumerSettings)
        let plain = try UpdateConsumer(brokers: cluster.bootstrapServers, group: "bench.plain", patterns: ["^hps_et\\.m\\..+$"],
                                       source: server.configuration.updateSource,
                                       settings: Self.consumerSettings)
        let publisher = try UpdatePublisher(brokers: cluster.bootstrapServers)
        let probe = keys[0]
        let perBatch = max(1, updatesPerSecond / batchesPerSecond)
        let stop = Locked(false)
        // Per sequence number: when it was published, when the plain consumer got it, when a lookup returned it.
        let published = Locked([ContinuousClock.Instant]())
        let delivered = Locked([Int: ContinuousClock.Instant]()), visible = Locked([Int: ContinuousClock.Instant]())
        let lookups = Locked(0)

        let consuming = Task { try await work[0].run(blocking: .dedicatedThread) }
        defer { consuming.cancel() }
        let threads = Locked(0)
        func thread(_ body: @escaping @Sendable () -> Void) {
            threads.withLock { $0 += 1 }
            Task.detached {
                await BlockingRunner.dedicatedThread.run(body)
                threads.withLock { $0 -= 1 }
            }
        }
        // The producer: one batch every 10 ms, the probe's vector holding the batch's number.
        thread {
            var random = SplitMix64(seed: 9)
            let start = ContinuousClock.now
            var sequence = 0
            while !stop.withLock({ $0 }) {
                let due = start + .nanoseconds(Int64(sequence) * 1_000_000_000 / Int64(batchesPerSecond))
                let now = ContinuousClock.now
                if due > now { usleep(UInt32((due - now).nanoseconds / 1000)) }
                var batchKeys = [probe]
                while batchKeys.count < perBatch { batchKeys.append(keys[1 + Int(random.next() % UInt64(tableKeys - 1))]) }
                var vectors = [Float](repeating: Float(sequence), count: vecSize)
                vectors.reserveCapacity(perBatch * vecSize)
                for _ in 1..<perBatch { for _ in 0..<vecSize { vectors.append(random.nextFloat(-1, 1)) } }
                published.withLock { $0.append(ContinuousClock.now) }
                _ = try? batchKeys.withUnsafeBufferPointer { k in
                    try vectors.withUnsafeBufferPointer { v in try publisher.publish(topic, keys: k, vectors: v, vecSize: vecSize) }
                }
                sequence += 1
            }
            try? publisher.flush()
        }
        // Kafka's delivery alone: the probe's number as a plain consumer reads it.
        thread {
            while !stop.withLock({ $0 }) {
                let poll = plain.poll(maxMessages: 1000, timeoutMs: 100)
                let now = ContinuousClock.now
                for message in poll.messages {
                    guard let update = try? message.payload.withUnsafeBytes({ try UpdateMessage(decoding: $0, vecSize: vecSize) }),
                          let index = update.keys.firstIndex(of: probe) else { continue }
                    let sequence = Int(update.vectors[index * vecSize])
                    delivered.withLock { if $0[sequence] == nil { $0[sequence] = now } }
                }
            }
            plain.close()
        }
        // The lookups: one sample of 26 keys, the probe first, at the rate asked.
        thread {
            var random = SplitMix64(seed: 11)
            let start = ContinuousClock.now
            var count = 0, seen = -1
            while !stop.withLock({ $0 }) {
                let due = start + .nanoseconds(Int64(count) * 1_000_000_000 / Int64(lookupsPerSecond))
                let now = ContinuousClock.now
                if due > now { usleep(UInt32((due - now).nanoseconds / 1000)) }
                var sample = [probe]
                for _ in 1..<26 { sample.append(keys[Int(random.next() % UInt64(tableKeys))]) }
                guard let vector = try? session.lookup(table: 0, keys: sample) else { continue }
                let returned = ContinuousClock.now
                let number = Int(vector[0])
                // A fresh server's probe holds its file row: a number only once an update arrived.
                if vector[0] == vector[1] && number > seen && Float(number) == vector[0] {
                    visible.withLock { for s in (seen + 1)...number where $0[s] == nil { $0[s] = returned } }
                    seen = number
                }
                count += 1
                lookups.withLock { $0 += 1 }
            }
        }
        // Warm-up until both consumers see the probes, then the measured window.
        let warmupStart = ContinuousClock.now
        while (visible.withLock({ $0.isEmpty }) || delivered.withLock({ $0.isEmpty }))
            && ContinuousClock.now - warmupStart < .seconds(60) {
            usleep(100_000)
        }
        usleep(2_000_000)
        let firstMeasured = published.withLock { $0.count }
        let lookupsBefore = lookups.withLock { $0 }
        let windowStart = ContinuousClock.now
        usleep(UInt32(seconds * 1e6))
        let lastMeasured = published.withLock { $0.count }
        let window = (ContinuousClock.now - windowStart).seconds
        let lookupRate = Double(lookups.withLock { $0 } - lookupsBefore) / window
        usleep(1_000_000)  // the last batches of the window become visible
        stop.withLock { $0 = true }
        while threads.withLock({ $0 }) > 0 { usleep(10_000) }

        let times = published.withLock { $0 }
        func latencies(_ seen: [Int: ContinuousClock.Instant]) -> (milliseconds: [Double], missing: Int) {
            var values: [Double] = [], missing = 0
            for sequence in firstMeasured..<lastMeasured {
                guard let at = seen[sequence] else { missing += 1; continue }
                values.append((at - times[sequence]).microseconds / 1000)
            }
            return (values.sorted(), missing)
        }
        let server_ = latencies(visible.withLock { $0 }), kafka = latencies(delivered.withLock { $0 })
        let batches = lastMeasured - firstMeasured
        let updateRate = Double(batches * perBatch) / window
        func row(_ name: String, _ result: (milliseconds: [Double], missing: Int)) {
            let p50 = result.milliseconds.isEmpty ? .nan : percentile(result.milliseconds, 0.5)
            let p99 = result.milliseconds.isEmpty ? .nan : percentile(result.milliseconds, 0.99)
            let worst = result.milliseconds.last ?? .nan
            if markdown {
                print("| \(name) | \(result.milliseconds.count) | \(format(p50, 2)) ms | \(format(p99, 2)) ms | \(format(worst, 2)) ms | \(result.missing) |")
            } else {
                print("  \(name): \(result.milliseconds.count) batches, p50 \(format(p50, 2)) ms, p99 \(format(p99, 2)) ms, max \(format(worst, 2)) ms, \(result.missing) not seen")
            }
        }
        let title = "\(format(updateRate, 0)) key updates/s (vec \(vecSize), \(perBatch) keys per batch, \(batchesPerSecond) batches/s) while looking up \(format(lookupRate, 0)) samples/s of 26 keys, \(format(window, 1)) s"
        if markdown {
            print("| produce to visible: \(title) | batches | p50 | p99 | max | not seen |")
            print("| --- | --- | --- | --- | --- | --- |")
        } else {
            print("produce to visible: \(title)")
        }
        row("Kafka's delivery alone (a plain consumer of the same topic)", kafka)
        row("visible to a lookup (the server's consumer applied it to the hash map)", server_)
    }
}
#endif
