import Foundation
import HPSStoreTestSupport
import Testing

@testable import HPS

/// Sharding a model's GPU tables over its GPUs (`gpu_sharding`), as far as
/// it runs without a GPU: the configuration, the owner of each key, the
/// placement of shards and groups, the routing of a lookup to the shards and
/// of the rows back, and a whole deployment whose GPU caches are stood in
/// for by CPU caches (`StandInCacheFactory`; CI has no GPU).
struct ShardingTests {
    // MARK: Configuration

    private func model(_ extra: String) -> String {
        Fixtures.notebook.replacingOccurrences(of: "\"gpucache\"", with: "\(extra) \"gpucache\"")
    }

    @Test("gpu_sharding defaults to replicated; row_wise and table_wise are read with gpu_shards, and written back")
    func configuration() throws {
        #expect(try HPSConfiguration.parse(json: Fixtures.notebook).models[0].gpuSharding == .replicated)
        #expect(try HPSConfiguration.parse(json: Fixtures.notebook).models[0].gpuShards == nil)
        for (text, sharding) in [("row_wise", GPUSharding.rowWise), ("table_wise", .tableWise)] {
            let json = model("\"gpu_sharding\": \"\(text)\", \"gpu_shards\": 3,")
            try #require(json != Fixtures.notebook)
            let configuration = try HPSConfiguration.parse(json: json)
            #expect(configuration.models[0].gpuSharding == sharding)
            #expect(configuration.models[0].gpuShards == 3)
            #expect(try HPSConfiguration.parse(json: configuration.jsonValue().serialized()) == configuration)
        }
        let unsharded = try HPSConfiguration.parse(json: Fixtures.notebook)
        #expect(try HPSConfiguration.parse(json: unsharded.jsonValue().serialized()) == unsharded)
    }

    @Test("a bad gpu_sharding or gpu_shards is refused naming the key and what it takes")
    func badConfiguration() throws {
        for (extra, key, expected) in [
            ("\"gpu_sharding\": \"rows\",", "gpu_sharding", "one of replicated, row_wise, table_wise"),
            ("\"gpu_sharding\": \"row_wise\", \"gpu_shards\": 0,", "gpu_shards", "at least 1"),
            ("\"gpu_sharding\": \"row_wise\", \"gpu_shards\": \"2\",", "gpu_shards", "an integer"),
            ("\"gpu_shards\": 2,", "gpu_shards", "set gpu_sharding to row_wise or table_wise"),
        ] {
            do {
                _ = try HPSConfiguration.parse(json: model(extra))
                Issue.record("\(extra) was accepted")
            } catch {
                let text = String(describing: error)
                #expect(text.contains("models[0].\(key)"), "\(text)")
                #expect(text.contains(expected), "\(text)")
                #expect(!text.contains("\n"))
            }
        }
    }

    @Test("sharding a model without gpucache warns that it is served from the CPU, unsharded")
    func shardingWithoutGPUCache() throws {
        let json = model("\"gpu_sharding\": \"row_wise\",").replacingOccurrences(of: "\"gpucache\": true", with: "\"gpucache\": false")
        try #require(json.contains("\"gpucache\": false"))
        let configuration = try HPSConfiguration.parse(json: json)
        #expect(configuration.warnings.contains { $0.contains("gpu_sharding") && $0.contains("gpucache is false") })
    }

    // MARK: Owners and placement

    @Test("every key has one owner, the same every time, and consecutive keys spread evenly over the shards")
    func owners() {
        for shards in [1, 2, 3, 4, 7] {
            var counts = [Int](repeating: 0, count: shards)
            for key in Int64(0)..<70_000 {
                let owner = RowShard.owner(of: key, shards: shards)
                #expect((0..<shards).contains(owner))
                counts[owner] += 1
                let owning = (0..<shards).filter { RowShard(index: $0, count: shards).owns(key) }
                if key % 997 == 0 { #expect(owning == [owner]) }
            }
            let even = 70_000 / shards
            #expect(counts.allSatisfy { abs($0 - even) < even / 20 }, "\(shards) shards: \(counts)")
        }
        var random = SplitMix64(seed: 5)
        for _ in 0..<1000 {
            let key = Int64(bitPattern: random.next())
            #expect(RowShard.owner(of: key, shards: 5) == RowShard.owner(of: key, shards: 5))
            #expect(RowShard.owner(of: key, shards: 1) == 0)
        }
    }

    private func shardedModel(_ sharding: GPUSharding, shards: Int?, devices: [Int]) -> ModelConfiguration {
        var model = ModelConfiguration(name: "m", sparseFiles: ["a", "b", "c", "d", "e"], vecSizes: [8, 8, 8, 8, 8],
                                       maxQueryKeysPerSample: [1, 1, 1, 1, 1])
        model.gpuSharding = sharding
        model.gpuShards = shards
        model.deployedDevices = devices
        return model
    }

    @Test("shards go to the model's devices in turn; table_wise places the largest group first on the lightest shard")
    func placement() {
        let devices = ShardPlacement(model: shardedModel(.rowWise, shards: 3, devices: [2, 5]), groupBytes: [90])
        #expect(devices.devices == [2, 5, 2])
        #expect(devices.shards(on: 2) == [0, 2])
        #expect(devices.bytesPerShard == [30, 30, 30])
        #expect(ShardPlacement(model: shardedModel(.rowWise, shards: nil, devices: [1, 0]), groupBytes: [1]).devices == [1, 0])
        #expect(ShardPlacement(model: shardedModel(.rowWise, shards: 4, devices: [0]), groupBytes: [1]).devices == [0, 0, 0, 0])

        let tables = ShardPlacement(model: shardedModel(.tableWise, shards: 2, devices: [0, 1]), groupBytes: [100, 60, 50, 40, 10])
        // 100 → 0; 60 → 1; 50 → 1 (60 < 100); 40 → 0 (100 < 110); 10 → 1 (110 < 140).
        #expect(tables.shardOfGroup == [0, 1, 1, 0, 1])
        #expect(tables.bytesPerShard == [140, 120])
        // Equal groups fill the shards in turn, the lowest index first.
        let equal = ShardPlacement(model: shardedModel(.tableWise, shards: 3, devices: [0]), groupBytes: [5, 5, 5, 5])
        #expect(equal.shardOfGroup == [0, 1, 2, 0])
        let replicated = ShardPlacement(model: shardedModel(.replicated, shards: nil, devices: [0, 1]), groupBytes: [7, 3])
        #expect(replicated.devices == [0, 1])
        #expect(replicated.bytesPerShard == [10, 10])
    }

    // MARK: Routing

    @Test("a routed batch gives each shard its own keys in order, as runs of their members, and gathers every row back in place")
    func route() {
        var random = SplitMix64(seed: 11)
        let vecSize = 3
        let counts = [0, 17, 1, 230, 5]
        let members = [1, 0, 1, 2, 0]
        let keys = (0..<counts.reduce(0, +)).map { _ in Int64(bitPattern: random.next()) % 1000 }
        var output = [Float](repeating: .nan, count: keys.count * vecSize)
        // The row of (member, key) that a shard writes: what the gather must put in key i's place.
        func row(_ member: Int, _ key: Int64) -> [Float] { (0..<vecSize).map { Float(member * 10_000) + Float(key) + Float($0) / 4 } }
        keys.withUnsafeBufferPointer { k in
            output.withUnsafeMutableBufferPointer { out in
                var runs: [LookupRun] = []
                var start = 0
                for (count, member) in zip(counts, members) {
                    runs.append(LookupRun(member: member, keys: k.baseAddress! + start, count: count,
                                          output: out.baseAddress! + start * vecSize))
                    start += count
                }
                runs.withUnsafeBufferPointer { runs in
                    for shards in [1, 2, 4] {
                        let route = RowRoute(CacheBatch(keys: k, runs: runs), shards: shards, vecSize: vecSize)
                        defer { route.deallocate() }
                        #expect(route.shardStarts.first == 0 && route.shardStarts.last == keys.count)
                        #expect(Set((0..<keys.count).map { route.origin[$0] }).count == keys.count)
                        for s in 0..<shards {
                            let mine = (route.shardStarts[s]..<route.shardStarts[s + 1])
                            #expect(mine.allSatisfy { RowShard.owner(of: route.keys[$0], shards: shards) == s })
                            #expect(mine.allSatisfy { route.keys[$0] == keys[route.origin[$0]] })
                            #expect(zip(mine, mine.dropFirst()).allSatisfy { route.origin[$0] < route.origin[$1] })
                            #expect(route.runs[s].reduce(0) { $0 + $1.count } == mine.count)
                            // Each shard run is one batch run's keys; the shard writes its rows to the staging.
                            for run in route.runs[s] {
                                for j in 0..<run.count {
                                    let value = row(run.member, run.keys[j])
                                    for d in 0..<vecSize { run.output[j * vecSize + d] = value[d] }
                                }
                            }
                        }
                        out.update(repeating: .nan)
                        route.gather(runs, vecSize: vecSize)
                        var flat = 0
                        for (count, member) in zip(counts, members) {
                            for _ in 0..<count {
                                #expect(Array(out[(flat * vecSize)..<((flat + 1) * vecSize)]) == row(member, keys[flat]),
                                        "\(shards) shards, key \(flat)")
                                flat += 1
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: A deployment

    /// Two tables of vec 8 (fused into one group when fusion is on) and one of vec 4.
    private func writeModel(in directory: TemporaryDirectory, sharding: String, shards: Int, devices: [Int],
                            fuse: Bool) throws -> (json: JSONValue, tables: [RandomTable]) {
        let tables = [RandomTable(count: 400, vecSize: 8, seed: 1, keyRange: 0...999),
                      RandomTable(count: 300, vecSize: 8, seed: 2, keyRange: 0...999),
                      RandomTable(count: 200, vecSize: 4, seed: 3, keyRange: 0...999)]
        var specs: [TableSpec] = []
        for (i, table) in tables.enumerated() {
            let folder = joinPath(directory.path, "t\(i)")
            try table.write(to: folder, table: "t\(i)")
            specs.append(TableSpec(name: "t\(i)", folder: folder, vecSize: table.vecSize, defaultValue: Double(i) + 0.5,
                                   maxPerSample: 64))
        }
        var json = TestConfiguration.json(tables: specs, fuse: fuse, modelExtra: [
            ("gpu_sharding", .string(sharding)), ("gpu_shards", .integer(Int64(shards))),
            ("gpucache", .bool(true)), ("gpucacheper", .double(1)),
        ])
        if case var .object(top) = json, case var .array(models)? = top["models"], case var .object(first) = models[0] {
            first["deployed_device_list"] = .array(devices.map { .integer(Int64($0)) })
            models[0] = .object(first)
            top["models"] = .array(models)
            json = .object(top)
        }
        return (json, tables)
    }

    /// A server of `json` whose GPU caches `factory` makes.
    private func serve(_ json: JSONValue, in directory: TemporaryDirectory,
                       factory: StandInCacheFactory) throws -> HierarchicalParameterServer {
        let path = try TestConfiguration.write(json, to: directory.path)
        return try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), backends: [],
                                               parallelism: 1, logger: nil, caches: factory, loading: nil)
    }

    @Test("row_wise: every GPU session answers as the CPU does, each shard holds and is asked only the keys it owns", arguments: [false, true])
    func rowWiseDeployment(fuse: Bool) throws {
        let directory = try TemporaryDirectory(prefix: "hps-sharding")
        defer { directory.remove() }
        let (json, tables) = try writeModel(in: directory, sharding: "row_wise", shards: 3, devices: [0, 1], fuse: fuse)
        let factory = StandInCacheFactory()
        let server = try serve(json, in: directory, factory: factory)
        let groups = fuse ? 2 : 3
        let calls = factory.calls.withLock { $0 }
        // One cache per group and shard, each on its shard's device, holding the rows its shard owns.
        #expect(calls.count == groups * 3)
        for call in calls {
            let shard = try #require(call.shard)
            #expect(shard.count == 3)
            #expect(call.device == [0, 1, 0][shard.index])
            #expect(call.keys.allSatisfy(shard.owns))
        }
        for (t, table) in tables.enumerated() {
            let g = fuse ? (t < 2 ? 1 : 0) : t
            let held = calls.filter { $0.group == g }.reduce(0) { $0 + $1.keys.count }
            #expect(held == (fuse ? (t < 2 ? 700 : 200) : table.keys.count), "table \(t)")
        }
        let cpu = try server.session(model: "m")
        let sessions = try [0, 1].map { try server.session(model: "m", device: $0) }
        // The GPU sessions share the group's sharded cache; its background work is counted once.
        for g in 0..<groups {
            #expect(sessions[0].caches[g] === sessions[1].caches[g])
            #expect(sessions[0].caches[g] is RowWiseShardedCache)
        }
        var random = SplitMix64(seed: 99)
        for round in 0..<6 {
            // Keys in the tables and beyond them (answered with the defaults), repeats included.
            let requests = tables.indices.map { t in (table: t, keys: (0..<(37 * (round + 1))).map { _ in Int64(random.next() % 1300) }) }
            let expected = try cpu.lookup(tables: requests)
            for (t, keys) in requests.map({ ($0.table, $0.keys) }) {
                let reference = expectedRows(keys, in: tables[t].reference, vecSize: tables[t].vecSize, defaultValue: Float(t) + 0.5)
                #expect(expected[t] == reference, "the CPU session, table \(t)")
            }
            let session = sessions[round % 2]
            #expect(try session.lookup(tables: requests) == expected, "round \(round)")
            #expect(try session.lookup(table: 2, keys: requests[2].keys) == expected[2])
        }
        // Each shard was asked exactly the keys it owns.
        let sharded = try #require(sessions[0].caches[0] as? RowWiseShardedCache)
        let asked = sharded.shards.map(\.statistics.keys)
        #expect(asked.reduce(0, +) == sharded.statistics.keys)
        #expect(asked.allSatisfy { $0 > 0 })
        // An update reaches the shard holding the key and nothing else.
        let key = tables[2].keys[0]
        let owner = RowShard.owner(of: key, shards: 3)
        let vector = [Float](repeating: 7, count: 4)
        let update = try [key].withUnsafeBufferPointer { k in
            try vector.withUnsafeBufferPointer { v in try (sessions[0].caches[fuse ? 0 : 2]!).update(member: 0, keys: k, vectors: v) }
        }
        #expect(update.rows == 1)
        let shardCache = try #require(sessions[0].caches[fuse ? 0 : 2] as? RowWiseShardedCache)
        #expect((shardCache.shards[owner] as? StandInGPUCache)?.rows.count == calls.first { $0.group == (fuse ? 0 : 2) && $0.shard?.index == owner }!.keys.count - 1)
    }

    @Test("row_wise refuses device keys and destinations with one sentence naming the setting")
    func rowWiseRefusesDeviceMemory() throws {
        let directory = try TemporaryDirectory(prefix: "hps-sharding")
        defer { directory.remove() }
        let (json, _) = try writeModel(in: directory, sharding: "row_wise", shards: 2, devices: [0], fuse: true)
        let server = try serve(json, in: directory, factory: StandInCacheFactory())
        let session = try server.session(model: "m", device: 0)
        let keys: [Int64] = [1, 2]
        do {
            try keys.withUnsafeBufferPointer { k in
                _ = try session.lookup([(table: 2, keys: k)],
                                       into: .device(DevicePointer(device: 0, address: 4096), count: 8))
            }
            Issue.record("a device destination was accepted")
        } catch {
            let text = String(describing: error)
            #expect(text.contains("gpu_sharding row_wise"), "\(text)")
            #expect(!text.contains("\n"))
        }
        do {
            _ = try session.lookup(deviceKeys: [(table: 2, keys: DeviceKeys(start: DevicePointer(device: 0, address: 8192), count: 2, type: .int64))],
                                   into: .device(DevicePointer(device: 0, address: 4096), count: 8))
            Issue.record("device keys were accepted")
        } catch {
            #expect(String(describing: error).contains("gpu_sharding row_wise"), "\(error)")
        }
    }

    @Test("table_wise: each group's cache lives on its shard's device, whole, and every GPU session answers as the CPU does")
    func tableWiseDeployment() throws {
        let directory = try TemporaryDirectory(prefix: "hps-sharding")
        defer { directory.remove() }
        let (json, tables) = try writeModel(in: directory, sharding: "table_wise", shards: 2, devices: [0, 1], fuse: false)
        let factory = StandInCacheFactory()
        let server = try serve(json, in: directory, factory: factory)
        // Bytes: t0 400 × 32, t1 300 × 32, t2 200 × 16: t0 → shard 0, t1 → shard 1, t2 → shard 1.
        let calls = factory.calls.withLock { $0 }.sorted { $0.group < $1.group }
        #expect(calls.map(\.group) == [0, 1, 2])
        #expect(calls.map(\.device) == [0, 1, 1])
        #expect(calls.allSatisfy { $0.shard == nil })
        #expect(calls.map(\.keys.count) == tables.map(\.keys.count))
        let cpu = try server.session(model: "m")
        var random = SplitMix64(seed: 7)
        let requests = tables.indices.map { t in (table: t, keys: (0..<100).map { _ in Int64(random.next() % 1300) }) }
        let expected = try cpu.lookup(tables: requests)
        for device in [0, 1] {
            #expect(try server.session(model: "m", device: device).lookup(tables: requests) == expected)
        }
        #expect(server.backgroundWork.count == server.storeBackgroundWork.count)
    }
}
