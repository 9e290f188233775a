import HPSStoreTestSupport
import Testing

@testable import HPS

/// `LookupSession.lookup(_:into:)`: one validation for every caller, rows
/// end to end in the caller's buffer, device memory refused on the CPU.
struct LookupDestinationTests {
    private func deployment() throws -> (TemporaryDirectory, [RandomTable], LookupSession) {
        let directory = try TemporaryDirectory(prefix: "hps-destination")
        let tables = [RandomTable(count: 300, vecSize: 4, seed: 11, keyRange: 0...999),
                      RandomTable(count: 200, vecSize: 2, seed: 12, keyRange: 0...999)]
        for (i, t) in tables.enumerated() { try t.write(to: joinPath(directory.path, "embeddings/t\(i)")) }
        let json = TestConfiguration.json(
            tables: [TableSpec(name: "t0", folder: "embeddings/t0", vecSize: 4, defaultValue: 0.5, maxPerSample: 4),
                     TableSpec(name: "t1", folder: "embeddings/t1", vecSize: 2, defaultValue: -1, maxPerSample: 4)],
            maxBatchSize: 16, supportLongLong: false)
        let server = try TestConfiguration.server(json, in: directory.path)
        return (directory, tables, try server.session(model: "m"))
    }

    @Test("rows land end to end in a host buffer, every element written, as the array API returns them")
    func hostBuffer() throws {
        let (directory, tables, session) = try deployment()
        defer { directory.remove() }
        let keys0 = Array(tables[0].keys[0..<10]) + [5000]
        let keys1 = Array(tables[1].keys[3..<8])
        var output = [Float](repeating: .nan, count: keys0.count * 4 + keys1.count * 2 + keys0.count * 4)
        let counts = try keys0.withUnsafeBufferPointer { k0 in
            try keys1.withUnsafeBufferPointer { k1 in
                try output.withUnsafeMutableBufferPointer { out in
                    try session.lookup([(0, k0), (1, k1), (0, k0)], into: .host(out))
                }
            }
        }
        let expected = try session.lookup(tables: [(0, keys0), (1, keys1), (0, keys0)])
        #expect(bitwiseEqual(output, expected.flatMap { $0 }))
        #expect(!output.contains { $0.isNaN })
        #expect(counts.keys == 27 && counts.defaults == 2)
    }

    @Test("the one validation refuses bad requests with one sentence naming the fix")
    func validation() throws {
        let (directory, _, session) = try deployment()
        defer { directory.remove() }
        var output = [Float](repeating: 0, count: 8)
        let wrongSize = #expect(throws: LookupError.self) {
            try [Int64(1), 2].withUnsafeBufferPointer { k in
                try output.withUnsafeMutableBufferPointer { try session.lookup([(0, k)], into: .host(UnsafeMutableBufferPointer(rebasing: $0[0..<7]))) }
            }
        }
        #expect(wrongSize?.description == "the destination holds 7 floats but the keys' vectors take 8")
        let onDevice = #expect(throws: LookupError.self) {
            try [Int64(1), 2].withUnsafeBufferPointer { k in
                try session.lookup([(0, k)], into: .device(DevicePointer(device: 0, address: 4096), count: 8))
            }
        }
        #expect(onDevice?.description == "the destination is memory of GPU 0 but this session of model m runs on the CPU")
        let wide = #expect(throws: LookupError.self) {
            try [Int64(1) << 40].withUnsafeBufferPointer { k in
                try output.withUnsafeMutableBufferPointer { try session.lookup([(1, k)], into: .host(UnsafeMutableBufferPointer(rebasing: $0[0..<2]))) }
            }
        }
        #expect(wide == .keyOutOfRange(table: "t1", key: 1 << 40))
        let many = [Int64](repeating: 1, count: 65)
        #expect(throws: LookupError.tooManyKeys(model: "m", table: "t0", keys: 65, maxBatchSize: 16, maxPerSample: 4)) {
            try session.lookup(tables: [(0, many)])
        }
        #expect(throws: LookupError.notOnDevice(model: "m", device: 0, devices: [])) {
            _ = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: joinPath(directory.path, "hps.json")))
                .session(model: "m", device: 0)
        }
    }

    @Test("keys in device memory are checked before any lookup: type, device, count, destination, a session on the CPU")
    func deviceKeysValidation() throws {
        let (directory, _, session) = try deployment()
        defer { directory.remove() }
        func keys(_ count: Int, type: KeyType = .int32, device: Int = 0, address: UInt64 = 4096) -> DeviceKeys {
            DeviceKeys(start: DevicePointer(device: device, address: address), count: count, type: type)
        }
        let destination = LookupDestination.device(DevicePointer(device: 0, address: 8192), count: 8)
        func error(_ parts: [(table: Int, keys: DeviceKeys)], into: LookupDestination = destination) -> String? {
            #expect(throws: LookupError.self) { try session.lookup(deviceKeys: parts, into: into) }?.description
        }
        // supportlonglong false: 4-byte keys only.
        #expect(error([(0, keys(2, type: .int64))]) == "model m takes int32 keys (supportlonglong false), but the device keys of table t0 are int64; convert them on the device first")
        #expect(error([(0, keys(2, address: 0))]) == "the keys of table t0 are at address 0 but their count is 2")
        #expect(error([(0, keys(2, device: 1))]) == "the keys of table t0 are in the memory of GPU 1 but this session of model m runs on the CPU")
        #expect(error([(5, keys(2))]) == LookupError.unknownTable(model: "m", table: "5", available: ["t0", "t1"]).description)
        var host = [Float](repeating: 0, count: 8)
        let hostError = host.withUnsafeMutableBufferPointer { out in
            #expect(throws: LookupError.self) { try session.lookup(deviceKeys: [(0, keys(2, device: 0))], into: .host(out)) }?.description
        }
        // The device check comes first on a CPU session; the destination's kind is checked before any GPU is asked.
        #expect(hostError == "the keys of table t0 are in the memory of GPU 0 but this session of model m runs on the CPU")
        #expect(error([(0, keys(0))], into: .host(UnsafeMutableBufferPointer(start: nil, count: 0))) == "keys in device memory are looked up into device memory; give a device destination on the keys' GPU")
        #expect(error([(0, keys(0))], into: .device(DevicePointer(device: 0, address: 8192), count: 4)) == "the destination holds 4 floats but the keys' vectors take 0")
        #expect(error([(0, keys(0))], into: .device(DevicePointer(device: 0, address: 8192), count: 0)) == "the destination is memory of GPU 0 but this session of model m runs on the CPU")
    }
}

/// The bounded CPU cache on its own, in front of a hash-map tier.
struct CPUEmbeddingCacheTests {
    @Test("misses are read from below and cached, absent keys get the default and are not cached")
    func missesThenHits() throws {
        let store = HashMapStore(partitions: 2)
        let below = try store.createTable("hps_et.m.g", vecSize: 3, members: 2, expectedKeys: 100)
        let rows = RandomTable(count: 50, vecSize: 3, seed: 5, keyRange: 0...999)
        try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in _ = try below.insert(member: 1, keys: k, vectors: v, parallelism: 1) }
        }
        let cache = CPUEmbeddingCache(tag: "hps_et.m.g", vecSize: 3, members: 2, capacity: 40)
        let chain = TierChain(tiers: [below])
        let keys = Array(rows.keys[0..<20]) + [5000, 5001]
        func look() -> (out: [Float], hits: TierHits) {
            var out = [Float](repeating: .nan, count: keys.count * 3)
            var hits = TierHits(tiers: 2, members: 2)
            keys.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { o in
                    let runs = [LookupRun(member: 1, keys: k.baseAddress!, count: keys.count, output: o.baseAddress!)]
                    runs.withUnsafeBufferPointer { r in
                        [Float(0), 9].withUnsafeBufferPointer { d in
                            try! cache.lookup(CacheBatch(keys: k, runs: r), below: chain, defaults: d, hits: &hits)
                        }
                    }
                }
            }
            return (out, hits)
        }
        let cold = look()
        #expect(bitwiseEqual(cold.out, Array(rows.vectors[0..<60]) + [Float](repeating: 9, count: 6)))
        #expect(cold.hits.answered == [[0, 0], [0, 20]] && cold.hits.missing == [0, 2])
        let warm = look()
        #expect(bitwiseEqual(warm.out, cold.out))
        #expect(warm.hits.answered == [[0, 20], [0, 0]] && warm.hits.missing == [0, 2])
        #expect(cache.count == 20)
        #expect(cache.statistics.hits == 20 && cache.statistics.keys == 44 && cache.statistics.inserts == 20)
    }

    @Test("a CPU cache refuses a device destination")
    func refusesDevice() throws {
        let cache = CPUEmbeddingCache(tag: "t", vecSize: 1, members: 1, capacity: 4)
        var hits = TierHits(tiers: 1, members: 1)
        let error = #expect(throws: LookupError.self) {
            try [Int64(1)].withUnsafeBufferPointer { k in
                try [LookupRun]().withUnsafeBufferPointer { r in
                    try [Float(0)].withUnsafeBufferPointer { d in
                        try cache.lookup(CacheBatch(keys: k, runs: r, device: DevicePointer(device: 0, address: 256)),
                                         below: nil, defaults: d, hits: &hits)
                    }
                }
            }
        }
        #expect(error?.description.hasPrefix("a CPU cache writes host memory") == true)
    }
}
