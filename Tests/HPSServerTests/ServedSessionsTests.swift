import HPS
import HPSServer
import NIOCore
import Testing

/// The server serves from the sessions it is given: lookups that may block
/// run on its thread pool, a model on several devices spreads its requests
/// over them, and the metrics name each session's tiers and devices.
struct ServedSessionsTests {
    /// A batcher of `model` with its own pool and metrics.
    private func batcher(_ model: ServedModel, options: LookupBatcher.Options = LookupBatcher.Options())
        -> (LookupBatcher, ServerMetrics, LookupThreadPool) {
        let metrics = ServerMetrics(sessions: model.sessions)
        let pool = LookupThreadPool(threads: 2)
        return (LookupBatcher(model: model, metrics: metrics, pool: pool, options: options), metrics, pool)
    }

    /// The exposition's lines that start with `prefix` and contain every one of `labels`.
    private func values(_ metrics: ServerMetrics, _ prefix: String, _ labels: String...) -> [Double] {
        String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n")
            .filter { line in line.hasPrefix(prefix) && labels.allSatisfy { line.contains($0) } }
            .compactMap { Double($0.split(separator: " ").last!) }
    }

    private let batch = ServedModel.Batch(keysPerTable: [[1, 2, 3, 250], [150, 151]])

    @Test("a session that may block is looked up on the server's thread pool, JSON and binary output alike")
    func blockingOnThePool() async throws {
        let fixture = try ServerFixture()
        var tables: [ThreadRecordingTable] = []
        let session = fixture.session(mayBlock: true) { table in
            let recording = ThreadRecordingTable(table)
            tables.append(recording)
            return recording
        }
        let (batcher, _, pool) = batcher(ServedModel(session: session))
        let expected = try fixture.expected(batch.keysPerTable)
        #expect(try await batcher.lookup(batch) == expected)
        var buffer = ByteBuffer(string: "header")
        try await batcher.lookup(batch, appendingTo: &buffer)
        #expect(buffer.readString(length: 6) == "header")
        var floats: [Float] = []
        while let bits = buffer.readInteger(endianness: .little, as: UInt32.self) { floats.append(Float(bitPattern: bits)) }
        #expect(floats == expected)
        let names = tables.flatMap(\.threadNames)
        #expect(names.count == 2)
        #expect(names.allSatisfy { $0.hasPrefix("TP-#") }, "\(names)")
        await pool.shutdown()
    }

    @Test("a small lookup of an in-memory session runs in the request's task, not on the pool")
    func inMemoryInline() async throws {
        let fixture = try ServerFixture()
        var tables: [ThreadRecordingTable] = []
        let session = fixture.session(mayBlock: false) { table in
            let recording = ThreadRecordingTable(table)
            tables.append(recording)
            return recording
        }
        let (batcher, _, pool) = batcher(ServedModel(session: session))
        #expect(try await batcher.lookup(batch) == fixture.expected(batch.keysPerTable))
        let names = tables.flatMap(\.threadNames)
        #expect(names.count == 1 && !names[0].hasPrefix("TP-#"), "\(names)")
        await pool.shutdown()
    }

    @Test("a model on two devices takes turns with round robin, and uses both when least busy",
          arguments: [LookupBatcher.Spreading.roundRobin, .leastBusy])
    func spreadOverDevices(spreading: LookupBatcher.Spreading) async throws {
        let fixture = try ServerFixture()
        let replicas = [fixture.session(mayBlock: true, cache: true, device: 0), fixture.session(mayBlock: true, cache: true, device: 1)]
        let model = ServedModel(sessions: replicas)
        #expect(model.devices == [0, 1])
        var options = LookupBatcher.Options()
        options.spreading = spreading
        options.enabled = spreading == .leastBusy  // round robin with batching off: strictly in turn
        let (batcher, _, pool) = batcher(model, options: options)
        let expected = try fixture.expected(batch.keysPerTable)
        for _ in 0..<10 { #expect(try await batcher.lookup(batch) == expected) }
        let keys = replicas.map { $0.statistics.totals.keys }
        if spreading == .roundRobin {
            #expect(keys == [30, 30])
        } else {
            #expect(keys.reduce(0, +) == 60 && keys.allSatisfy { $0 > 0 }, "\(keys)")
        }
        await pool.shutdown()
    }

    @Test("the metrics give the L1 hit rate, the hits of each tier by the session's names and the GPU lookup time per device")
    func metricsPerTierAndDevice() async throws {
        let fixture = try ServerFixture()
        let replicas = [fixture.session(mayBlock: true, cache: true, device: 0), fixture.session(mayBlock: true, cache: true, device: 1)]
        var options = LookupBatcher.Options()
        options.enabled = false
        options.spreading = .roundRobin
        let (batcher, metrics, pool) = batcher(ServedModel(sessions: replicas), options: options)
        // Each device sees the keys twice: first from the hash map (key 250 from no tier), then from its cache.
        for _ in 0..<4 { _ = try await batcher.lookup(batch) }
        let model = "model=\"\(fixture.model)\""
        #expect(replicas.map(\.tierNames) == [["gpu_standin", "hash_map"], ["gpu_standin", "hash_map"]])
        #expect(values(metrics, "hps_tier_hits_total{", model, "table=\"table0\"", "tier=\"gpu_standin\"") == [6])
        #expect(values(metrics, "hps_tier_hits_total{", model, "table=\"table0\"", "tier=\"hash_map\"") == [6])
        #expect(values(metrics, "hps_default_value_keys_total{", model, "table=\"table0\"") == [4])
        // Table 0: 16 keys, 6 from the caches (key 250 is never cached).
        #expect(values(metrics, "hps_l1_hit_ratio{", model, "table=\"table0\"", "cache=\"gpu_standin\"") == [6.0 / 16])
        #expect(values(metrics, "hps_l1_hit_ratio{", model, "table=\"table1\"", "cache=\"gpu_standin\"") == [0.5])
        for device in ["0", "1"] {
            #expect(values(metrics, "hps_gpu_lookup_duration_seconds_count{", model, "device=\"\(device)\"") == [2])
            #expect(values(metrics, "hps_l1_cache_hit_ratio{", model, "device=\"\(device)\"", "cache=\"gpu_standin\"") == [5.0 / 12])
            #expect(values(metrics, "hps_l1_cache_inserts_total{", model, "device=\"\(device)\"") == [5])
        }
        #expect(values(metrics, "hps_lookup_duration_seconds_count{", model) == [4])
        await pool.shutdown()
    }

    @Test("a CPU session with an L1 cache counts its hits under cpu_cache, on device cpu, and no GPU time")
    func cpuCacheMetrics() async throws {
        let fixture = try ServerFixture()
        let session = fixture.session(mayBlock: true, cache: true)
        let (batcher, metrics, pool) = batcher(ServedModel(session: session))
        for _ in 0..<2 { _ = try await batcher.lookup(batch) }
        let model = "model=\"\(fixture.model)\""
        #expect(session.tierNames == ["cpu_cache", "hash_map"])
        #expect(values(metrics, "hps_tier_hits_total{", model, "table=\"table1\"", "tier=\"cpu_cache\"") == [2])
        #expect(values(metrics, "hps_tier_hits_total{", model, "table=\"table1\"", "tier=\"hash_map\"") == [2])
        #expect(values(metrics, "hps_l1_hit_ratio{", model, "table=\"table1\"", "cache=\"cpu_cache\"") == [0.5])
        #expect(values(metrics, "hps_l1_cache_hit_ratio{", model, "device=\"cpu\"") == [5.0 / 12])
        #expect(values(metrics, "hps_gpu_lookup_duration_seconds_count{").isEmpty)
        await pool.shutdown()
    }
}
