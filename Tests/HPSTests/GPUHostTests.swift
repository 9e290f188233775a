import HPSDemo
import Testing

@testable import HPS
@testable import HPSCUDA

/// What of the GPU path runs without a GPU: loading fails cleanly, and the
/// host-side bookkeeping that the kernels rely on.
struct GPUHostTests {
    @Test("an update's repeated keys are found, wherever they sit, and distinct keys pass (the check before the GPU write)")
    func updateRepeats() {
        var random = SplitMix64(seed: 21)
        let distinct = Array(Set((0..<5000).map { _ in Int64(bitPattern: random.next()) }))
        distinct.withUnsafeBufferPointer { #expect(!StagedUpdate.hasRepeats($0)) }
        for (first, second) in [(0, 1), (0, 4999), (2500, 17), (4998, 4999)] {
            var keys = distinct.prefix(5000).map { $0 }
            keys[second] = keys[first]
            keys.withUnsafeBufferPointer { #expect(StagedUpdate.hasRepeats($0), "repeat at \(first) and \(second)") }
        }
        [Int64]([0, 0]).withUnsafeBufferPointer { #expect(StagedUpdate.hasRepeats($0)) }
        [Int64]([7]).withUnsafeBufferPointer { #expect(!StagedUpdate.hasRepeats($0)) }
        [Int64]([-1, 1, Int64.min, Int64.max]).withUnsafeBufferPointer { #expect(!StagedUpdate.hasRepeats($0)) }
    }

    @Test("without libcuda, opening a GPU fails with an error that says no GPU and why")
    func driverMissing() throws {
        // CI machines have no NVIDIA driver; on a machine with one this test has nothing to check.
        guard (try? CUDADriver.shared()) == nil else { return }
        #expect(throws: CUDAError.self) { try CUDADevice(index: 0) }
        do {
            _ = try CUDADevice(index: 0)
        } catch {
            let text = String(describing: error)
            #expect(text.hasPrefix("no GPU: the CUDA driver (libcuda.so.1) could not be loaded"))
            #expect(text.contains("libcuda.so.1"))
        }
    }

    @Test("a second attempt gives the same error without retrying the load")
    func driverErrorIsCached() {
        let first = Result { try CUDADriver.shared() }
        let second = Result { try CUDADriver.shared() }
        switch (first, second) {
        case (.success(let a), .success(let b)): #expect(a === b)
        case (.failure(let a), .failure(let b)): #expect(String(describing: a) == String(describing: b))
        default: Issue.record("the two loads disagree")
        }
    }

    @Test("without libcuda, a server asked for GPU caches fails with one sentence saying there is no GPU, not a crash")
    func factoryWithoutDriver() throws {
        guard (try? CUDADriver.shared()) == nil else { return }
        let directory = try TemporaryDirectory(prefix: "hps-gpu-host")
        defer { directory.remove() }
        var model = SeedModel()
        (model.tables, model.vocab, model.dim, model.batchSize, model.keysPerSample) = (2, 10, 4, 2, 1)
        let path = try model.write(to: directory.path)
        var configuration = try HPSConfiguration.load(path: path)
        do {
            _ = try HierarchicalParameterServer(configuration: configuration, gpu: GPUCacheFactory())
            Issue.record("a server was made with GPU caches on a machine without a GPU")
        } catch {
            let text = String(describing: error)
            #expect((error as? HPSError)?.code == .device)
            #expect((error as? HPSError)?.cause is CUDAError)
            #expect((error as? HPSError)?.code == .device)
            #expect((error as? HPSError)?.cause is CUDAError)
            #expect(text.hasPrefix("no GPU: the CUDA driver (libcuda.so.1) could not be loaded"))
            #expect(!text.contains("\n"))
        }
        // A model without gpucache never asks the factory, so it is served from the CPU.
        configuration.models[0].gpuCache = false
        let server = try HierarchicalParameterServer(configuration: configuration, gpu: GPUCacheFactory())
        #expect(server.deviceSessions(model: model.modelName).isEmpty)
        #expect(throws: LookupError.self) { try server.session(model: model.modelName, device: 0) }
        #expect(try server.session(model: model.modelName).lookup(table: 0, keys: [1]).count == 4)
    }

    @Test("hps lookup --device gpu without a GPU fails with one line; --device auto answers from the CPU and says why")
    func lookupCommandWithoutGPU() throws {
        guard (try? CUDADriver.shared()) == nil else { return }
        let directory = try TemporaryDirectory(prefix: "hps-gpu-host")
        defer { directory.remove() }
        var model = SeedModel()
        (model.tables, model.vocab, model.dim, model.batchSize, model.keysPerSample) = (2, 10, 4, 2, 1)
        let path = try model.write(to: directory.path)
        let cli = CLITests()
        let refused = try cli.hps(["lookup", "--config", path, "--model", model.modelName, "--table", "table1", "--keys", "12",
                                   "--device", "gpu"], in: directory.path)
        #expect(refused.status != 0)
        #expect(refused.stderrLines.count == 1, "stderr: \(refused.stderr)")
        #expect(refused.stderr.hasPrefix("hps: no GPU: the CUDA driver (libcuda.so.1) could not be loaded"))
        let fallback = try cli.hps(["lookup", "--config", path, "--model", model.modelName, "--table", "table1", "--keys", "12",
                                    "--device", "auto", "--stats"], in: directory.path)
        #expect(fallback.status == 0, "stderr: \(fallback.stderr)")
        #expect(fallback.stderr.hasPrefix("hps: running on the CPU because no GPU"))
        #expect(fallback.stdout.hasPrefix("12: "))
        #expect(fallback.stdout.contains("answered by hash_map 1"))
    }

    @Test("a staged lookup keeps keys and run arrays in one upload, and the rows 16-byte aligned behind them")
    func stagedLayout() {
        for (keyBytes, runs, rowBytes, keys) in [(8 * 6656, 8, 6656 * 128 * 4, 6656), (4 * 3, 3, 0, 3), (4 * 5, 1, 5 * 3 * 4, 5)] {
            let layout = StagedLookup.Layout(keyBytes: keyBytes, runs: runs, rowBytes: rowBytes, keys: keys)
            #expect(layout.startsOffset >= keyBytes && layout.startsOffset % 4 == 0)
            #expect(layout.membersOffset == layout.startsOffset + (runs + 1) * 4)
            #expect(layout.rowsOffset >= layout.membersOffset + runs * 4 && layout.rowsOffset % 16 == 0)
            #expect(layout.rowsOffset < layout.membersOffset + runs * 4 + 16)
            #expect(layout.pinnedBytes == layout.rowsOffset + rowBytes)
            #expect(layout.missIndexOffset >= layout.rowsOffset + rowBytes && layout.missIndexOffset % 16 == 0)
            #expect(layout.deviceBytes >= layout.missIndexOffset + keys * 4)
        }
    }

    @Test("missed key indices are counted against the member of the run that holds them, empty runs included")
    func missAttribution() {
        let key: Int64 = 0
        var floats: Float = 0
        withUnsafePointer(to: key) { k in
            withUnsafeMutablePointer(to: &floats) { o in
                let runs = [(1, 3), (0, 0), (2, 2), (1, 4), (0, 1)].map { LookupRun(member: $0.0, keys: k, count: $0.1, output: o) }
                let indices: [Int32] = [9, 0, 2, 3, 4, 5, 8, 7]
                runs.withUnsafeBufferPointer { runs in
                    indices.withUnsafeBufferPointer { indices in
                        // Run starts 0, 3, 3, 5, 9: index 9 is member 0's, 0 and 2 member 1's, 3 and 4 member 2's, 5, 7 and 8 member 1's.
                        #expect(missesPerMember(indices, runs: runs, members: 3) == [1, 5, 2])
                    }
                }
            }
        }
        var hits = TierHits(tiers: 3, members: 2)
        hits.answered[0] = [10, 4]
        hits.moveFromCache(member: 0, count: 3, to: 2)
        hits.moveFromCache(member: 1, count: 1, to: nil)
        hits.moveFromCache(member: 0, count: 2, to: 7)  // a tier beyond the session's: counted as a default
        #expect(hits.answered == [[5, 3], [0, 0], [3, 0]] && hits.missing == [2, 1])
    }

    @Test("a GPU cache refuses memory of another GPU, and sample-major runs that do not tile the output, before any device work")
    func destinationChecks() throws {
        let keys: [Int64] = Array(0..<12)
        var out = [Float](repeating: 0, count: 12)
        try keys.withUnsafeBufferPointer { k in
            try out.withUnsafeMutableBufferPointer { o in
                let even = [LookupRun(member: 0, keys: k.baseAddress!, count: 6, output: o.baseAddress!),
                            LookupRun(member: 1, keys: k.baseAddress! + 6, count: 6, output: o.baseAddress! + 6)]
                let uneven = [LookupRun(member: 0, keys: k.baseAddress!, count: 4, output: o.baseAddress!),
                              LookupRun(member: 1, keys: k.baseAddress! + 4, count: 8, output: o.baseAddress! + 4)]
                try even.withUnsafeBufferPointer { runs in
                    let here = DevicePointer<Float>(device: 1, address: 4096)
                    let fine = try GPUOutput(CacheBatch(keys: k, runs: runs, device: here, layout: .samplesByRun(keysPerSample: 3)),
                                             device: 1, what: "t")
                    #expect(fine.layout == .samplesByRun && fine.keysPerSample == 3 && fine.device == here)
                    #expect(try GPUOutput(CacheBatch(keys: k, runs: runs), device: 1, what: "t").layout == .keyOrder)
                    #expect(throws: LookupError.self) {
                        try GPUOutput(CacheBatch(keys: k, runs: runs, device: DevicePointer(device: 0, address: 4096)), device: 1, what: "t")
                    }
                    #expect(throws: LookupError.self) {
                        try GPUOutput(CacheBatch(keys: k, runs: runs, layout: .samplesByRun(keysPerSample: 3)), device: 1, what: "t")
                    }
                    #expect(throws: LookupError.self) {
                        try GPUOutput(CacheBatch(keys: k, runs: runs, device: here, layout: .samplesByRun(keysPerSample: 4)), device: 1, what: "t")
                    }
                }
                try uneven.withUnsafeBufferPointer { runs in
                    do {
                        _ = try GPUOutput(CacheBatch(keys: k, runs: runs, device: DevicePointer(device: 0, address: 4096),
                                                     layout: .samplesByRun(keysPerSample: 2)), device: 0, what: "hps_et.m.fused_embedding0")
                        Issue.record("runs of 4 and 8 keys were taken as samples × 2 keys")
                    } catch {
                        let text = String(describing: error)
                        #expect(text.contains("hps_et.m.fused_embedding0") && text.contains("[4, 8]"))
                    }
                }
            }
        }
    }

    @Test("the GPU index finds every key of every member at its row, and nothing else")
    func indexFindsEveryKey() throws {
        var random = SplitMix64(seed: 17)
        let dim = 3
        var members: [(keys: [Int64], vectors: [Float])] = []
        for _ in 0..<3 {
            let keys = (0..<2000).map { _ in Int64(bitPattern: random.next() % 5000) }  // overlaps and repeats
            members.append((keys, (0..<(keys.count * dim)).map { _ in random.nextFloat(-1, 1) }))
        }
        let index = try GPUTableIndex(members: members, dim: dim)
        // Each (member, key)'s last row, as given.
        var expected: [Int: [Int64: Int]] = [:]
        for (m, member) in members.enumerated() {
            for (i, key) in member.keys.enumerated() { expected[m, default: [:]][key] = i }
        }
        let distinct = expected.values.reduce(0) { $0 + $1.count }
        #expect(index.count == distinct)
        #expect(index.vectors.count == distinct * dim)
        var rowsSeen = Set<Int>()
        for (m, rows) in expected {
            for (key, given) in rows {
                let row = try #require(index.row(of: key, member: m))
                rowsSeen.insert(row)
                // The row's vector is the member's last row for the key.
                #expect(Array(index.vectors[(row * dim)..<((row + 1) * dim)]) ==
                        Array(members[m].vectors[(given * dim)..<((given + 1) * dim)]))
            }
        }
        // Every row belongs to exactly one (member, key).
        #expect(rowsSeen == Set(0..<distinct))
        #expect(index.row(of: 6000, member: 0) == nil)
        #expect(index.row(of: expected[0]!.keys.first!, member: 3) == nil)
        #expect(index.capacity % 64 == 0)
        #expect(Double(index.capacity) * GPUTableIndex.maximumLoad >= 6000)
        // Each key sits in one of its two buckets.
        for (m, rows) in expected {
            for key in rows.keys {
                let (first, second) = index.buckets(of: key, member: m)
                let slot = try #require(index.find(key, member: m))
                #expect([first, second].contains(slot / GPUTableIndex.bucketSlots))
                #expect(index.slotKeys[slot] == key && Int(index.slotMembers[slot]) == m)
            }
        }
    }

    @Test("a GPU index asked for more load than two-choice buckets hold grows, and finds every key")
    func indexGrows() throws {
        var random = SplitMix64(seed: 23)
        let keys = (0..<20_000).map { _ in Int64(bitPattern: random.next()) }
        let index = try GPUTableIndex(members: [(keys, keys.map { Float($0 % 1000) })], dim: 1, load: 1.0)
        #expect(index.capacity > 20_032)
        for (given, key) in keys.enumerated() {
            let row = try #require(index.row(of: key, member: 0))
            #expect(index.vectors[row] == Float(keys[given] % 1000))
        }
    }

    @Test("a one-member GPU index keeps no members, and finds key 0 and negative keys")
    func indexOneMember() throws {
        let keys: [Int64] = [0, -1, .min, .max, 42, 0]  // 0 twice: the last row wins
        let vectors = (0..<(keys.count * 2)).map { Float($0) }
        let index = try GPUTableIndex(members: [(keys, vectors)], dim: 2)
        #expect(index.slotMembers.isEmpty)
        #expect(index.count == 5)
        for (given, key) in keys.enumerated() where given > 0 {
            let row = try #require(index.row(of: key, member: 0))
            #expect(Array(index.vectors[(row * 2)..<(row * 2 + 2)]) == Array(vectors[(given * 2)..<(given * 2 + 2)]))
        }
        #expect(index.row(of: 7, member: 0) == nil)
    }

    @Test("vectors that are not keys × vec size are refused")
    func indexShape() {
        #expect(throws: CUDAError.self) { try GPUTableIndex(members: [([1, 2], [1, 2, 3])], dim: 2) }
    }

    @Test("threads per key: a float4 each, at most a warp", arguments: [(1, 1), (3, 4), (4, 1), (16, 4), (64, 16), (128, 32), (300, 32)])
    func lanes(dim: Int, lanes: Int) {
        #expect(KernelSource.lanes(dim: dim) == lanes)
    }

    @Test("the kernel source is specialized for vec size and key type")
    func kernelSource() {
        let source = KernelSource.lookup(dim: 128, int64Keys: false)
        #expect(source.hasPrefix("#define DIM 128\n#define LANES 32\n#define KEY_T unsigned int"))
        for kernel in ["hps_lookup", "hps_dense", "hps_concat"] {
            #expect(source.contains("extern \"C\" __global__ void \(kernel)("))
        }
        // The device hash must be the host's: the same constants in the same order.
        #expect(source.contains("0x9E3779B97F4A7C15ull"))
        #expect(source.contains("0xFF51AFD7ED558CCDull"))
        #expect(source.contains("0xC4CEB9FE1A85EC53ull"))
    }
}

/// The on-disk cache of compiled kernels, which needs no GPU to check.
struct KernelCacheTests {
    @Test("the cache key changes with the source, the options and the card")
    func keys() {
        let base = KernelCache.key(source: "a", options: ["-x"], card: "H200")
        #expect(base.hasSuffix(".cubin") && base.count == 22)
        #expect(base == KernelCache.key(source: "a", options: ["-x"], card: "H200"))
        #expect(base != KernelCache.key(source: "b", options: ["-x"], card: "H200"))
        #expect(base != KernelCache.key(source: "a", options: ["-y"], card: "H200"))
        #expect(base != KernelCache.key(source: "a", options: ["-x"], card: "H100"))
        #expect(KernelCache.key(source: "ab", options: [], card: "") != KernelCache.key(source: "a", options: ["b"], card: ""))
    }

    @Test("a stored cubin loads back byte for byte, from a folder it creates")
    func roundTrip() throws {
        let directory = try TemporaryDirectory(prefix: "hps-kernels")
        defer { directory.remove() }
        let cache = KernelCache(folder: directory.path + "/nested/kernels")
        #expect(cache.load("x.cubin") == nil)
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        cache.store("x.cubin", bytes)
        #expect(cache.load("x.cubin") == bytes)
    }

    @Test("a cache turned off stores and loads nothing")
    func off() {
        let cache = KernelCache(folder: nil)
        cache.store("x.cubin", [1, 2, 3])
        #expect(cache.load("x.cubin") == nil)
    }
}
