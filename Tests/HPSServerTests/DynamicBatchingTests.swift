import HPS
import HPSServer
import Testing

/// Dynamic batching: concurrent requests merged into one lookup get exactly
/// what each would get alone, and the metrics count the lookups and the
/// requests merged into each.
struct DynamicBatchingTests {
    /// `count` HPS requests of random keys (some missing) for the fixture's two tables.
    private func batches(_ fixture: ServerFixture, count: Int) throws -> [ServedModel.Batch] {
        let model = try #require(fixture.server.routes.models[fixture.model])
        var random = SplitMix64(seed: 21)
        return try (0..<count).map { _ in
            let counts = [Int(random.next() % 30), Int(random.next() % 30) + 1]
            let keys = (0..<2).flatMap { table in (0..<counts[table]).map { _ in Int64(table * 100) + Int64(random.next() % 120) } }
            let request = try InferenceRequest.parse(body: Array(inferRequest(keys: keys, numKeys: counts.map(Int64.init)).serialized().utf8),
                                                     headerLength: nil)
            return try model.batch(of: request)
        }
    }

    /// The value of the metric line `name{labels}`.
    private func metric(_ fixture: ServerFixture, _ line: String) -> Double? {
        let text = String(decoding: fixture.server.metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix(line + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    /// Each batch looked up through `batcher` in a task of its own, all at once; the results in the batches' order.
    private func lookUpConcurrently(_ batches: [ServedModel.Batch], _ batcher: LookupBatcher) async throws -> [[Float]] {
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (i, batch) in batches.enumerated() { group.addTask { (i, try await batcher.lookup(batch)) } }
            var results = [[Float]](repeating: [], count: batches.count)
            for try await (i, floats) in group { results[i] = floats }
            return results
        }
    }

    @Test("requests queued behind a lookup are merged into one and each gets its own vectors")
    func mergedRequestsGetTheirOwnVectors() async throws {
        var options = HPSServer.Options()
        options.batching.maxQueueDelay = .seconds(1)  // the first waits, so all the others queue behind it
        options.batching.cpuLookups = 1
        let fixture = try ServerFixture(options: options)
        let batcher = try #require(fixture.server.routes.batchers[fixture.model])
        let batches = try batches(fixture, count: 40)
        let alone = try batches.map { try batcher.model.lookup($0).vectors }
        let merged = try await lookUpConcurrently(batches, batcher)
        #expect(merged == alone)
        let model = "{model=\"\(fixture.model)\"}"
        #expect(metric(fixture, "hps_lookup_batch_requests_sum" + model) == 40)
        #expect(metric(fixture, "hps_lookup_batch_requests_count" + model) == metric(fixture, "hps_lookup_batches_total" + model))
        #expect(try #require(metric(fixture, "hps_lookup_batches_total" + model)) < 40)
        let keys = batches.reduce(0) { $0 + $1.keysPerTable[0].count }
        #expect(metric(fixture, "hps_keys_looked_up_total{model=\"\(fixture.model)\",table=\"table0\"}") == Double(keys))
        // Every request's wait is recorded; the first waited the whole queue delay.
        #expect(metric(fixture, "hps_inference_queue_duration_seconds_count" + model) == 40)
        #expect(try #require(metric(fixture, "hps_inference_queue_duration_seconds_sum" + model)) >= 1)
    }

    @Test("the wait before each lookup is recorded, and the task's resumption after a lookup on the lookup threads", arguments: [0, 4096])
    func queueAndResumeDurations(inlineKeys: Int) async throws {
        var options = HPSServer.Options()
        options.batching.inlineKeys = inlineKeys  // 0: every lookup on the lookup threads
        let fixture = try ServerFixture(options: options)
        let batcher = try #require(fixture.server.routes.batchers[fixture.model])
        for batch in try batches(fixture, count: 3) {
            #expect(try await batcher.lookup(batch) == batcher.model.lookup(batch).vectors)
        }
        let model = "{model=\"\(fixture.model)\"}"
        #expect(metric(fixture, "hps_inference_queue_duration_seconds_count" + model) == 3)
        #expect(metric(fixture, "hps_lookup_resume_duration_seconds_count" + model) == (inlineKeys == 0 ? 3 : 0))
    }

    @Test("a prediction model's merged requests get their own predictions")
    func mergedPredictions() async throws {
        var options = HPSServer.Options()
        options.batching.maxQueueDelay = .milliseconds(500)
        options.batching.cpuLookups = 1
        let fixture = try ServerFixture(options: options, prediction: true)
        let batcher = try #require(fixture.server.routes.batchers[fixture.model + "_dense"])
        var random = SplitMix64(seed: 4)
        let batches = (0..<12).map { r in
            let samples = r % 3 + 1
            let keys = (0..<2).map { table in (0..<(samples * 26)).map { _ in Int64(table * 100) + Int64(random.next() % 100) } }
            return ServedModel.Batch(keysPerTable: keys, samples: samples)
        }
        let merged = try await lookUpConcurrently(batches, batcher)
        for (i, batch) in batches.enumerated() {
            let expected = try PredictionModelTests.expectedPredictions(fixture, keys: batch.keysPerTable, samples: batch.samples)
            #expect(merged[i] == expected, "request \(i)")
        }
        #expect(try #require(metric(fixture, "hps_lookup_batches_total{model=\"\(fixture.model)_dense\"}")) < 12)
    }

    @Test("a CPU session runs cpuLookups lookups at once; only the requests beyond them queue and merge")
    func concurrentCPULookups() async throws {
        var options = HPSServer.Options()
        options.batching.maxQueueDelay = .seconds(1)  // each leader waits, so the requests after the first three queue
        options.batching.cpuLookups = 3
        let fixture = try ServerFixture(options: options)
        let batcher = try #require(fixture.server.routes.batchers[fixture.model])
        let batches = try batches(fixture, count: 3)
        let alone = try batches.map { try batcher.model.lookup($0).vectors }
        let results = try await lookUpConcurrently(batches, batcher)
        #expect(results == alone)
        // With one lookup at a time (a GPU, or cpuLookups 1) the second and third would merge into the first's.
        let model = "{model=\"\(fixture.model)\"}"
        #expect(metric(fixture, "hps_lookup_batches_total" + model) == 3)
        #expect(metric(fixture, "hps_lookup_batch_requests_sum" + model) == 3)
    }

    @Test("with batching off, every request is a lookup of its own")
    func batchingOff() async throws {
        var options = HPSServer.Options()
        options.batching.enabled = false
        let fixture = try ServerFixture(options: options)
        let batcher = try #require(fixture.server.routes.batchers[fixture.model])
        let batches = try batches(fixture, count: 16)
        let alone = try batches.map { try batcher.model.lookup($0).vectors }
        let results = try await lookUpConcurrently(batches, batcher)
        #expect(results == alone)
        #expect(metric(fixture, "hps_lookup_batches_total{model=\"\(fixture.model)\"}") == 16)
        #expect(metric(fixture, "hps_lookup_batch_requests_sum{model=\"\(fixture.model)\"}") == 16)
    }
}
