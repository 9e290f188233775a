import Testing

@testable import HPS
@testable import HPSCUDA

/// What of the GPU path runs without a GPU: loading fails cleanly, and the
/// host-side bookkeeping that the kernels rely on.
struct GPUHostTests {
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
