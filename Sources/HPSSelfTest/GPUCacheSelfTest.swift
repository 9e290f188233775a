import HPSCUDA
import Glibc
import HPS
import HPSDemo

/// Checks the GPU dynamic cache against the CPU store it sits in front of,
/// through its L1 cache path (`EmbeddingCache.lookup`) into device and host
/// destinations: filled synchronously, every output row must equal the
/// CPU's (hits, misses, evictions and absent keys alike) and the keys must
/// be counted where they were found; filled asynchronously, misses read the
/// default first and the real vector once inserted (by the next lookup, or
/// by the insert work in the background); with capacity at least the
/// table's keys, every key hits after one pass; the refresh work brings
/// updates of the tier below to the GPU.
enum GPUCacheSelfTest {
    static func run(kernels: GPUKernels, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        var cases: [GPUSelfTest.Case] = []
        for (dim, int64Keys) in [(3, true), (16, false), (128, true)] {
            cases += try check(kernels: kernels, dim: dim, int64Keys: int64Keys, random: &random)
        }
        cases += try checkBackgroundWork(kernels: kernels, random: &random)
        for (dim, int64Keys) in [(3, true), (16, false), (128, true)] {
            cases += try GPUUpdateSelfTest.check(kernels: kernels, dim: dim, int64Keys: int64Keys, random: &random)
        }
        // Quantized tables: the CPU tier quantizes as the GPU tables do, and
        // every GPU table and cache stores the codes: misses, evictions and
        // refills through the dynamic and uvm caches, then online updates.
        for (dim, int64Keys, storage) in [(16, false, VectorStorage.fp16), (128, true, .bf16), (128, true, .int8), (64, true, .fp8)] {
            cases += try check(kernels: kernels, dim: dim, int64Keys: int64Keys, storage: storage, random: &random)
        }
        for (dim, storage) in [(3, VectorStorage.fp16), (128, .bf16), (128, .int8), (64, .fp8), (128, .fp8)] {
            cases += try GPUUpdateSelfTest.check(kernels: kernels, dim: dim, int64Keys: true, storage: storage, random: &random)
        }
        return cases
    }

    /// A lookup through a cache's L1 path: into `output` on the device
    /// (poisoned first, then downloaded), or into host memory (poisoned).
    /// - Returns: the rows in the layout asked for, and where the keys were found.
    static func lookup(_ cache: any EmbeddingCache, keys: [Int64], runs: [(member: Int, count: Int)], defaults: [Float],
                       output: DeviceBuffer<Float>, host: Bool, layout: OutputLayout = .runs,
                       below: TierChain? = nil) throws -> (rows: [Float], hits: TierHits) {
        let dim = cache.vecSize
        var hits = TierHits(tiers: 2, members: cache.memberCount)
        var rows = [Float](repeating: .nan, count: keys.count * dim)
        try output.fill32(0xFFFF_FFFF)
        try keys.withUnsafeBufferPointer { k in
            try rows.withUnsafeMutableBufferPointer { out in
                var offset = 0
                let lookupRuns = runs.map { run -> LookupRun in
                    defer { offset += run.count }
                    return LookupRun(member: run.member, keys: k.baseAddress! + offset, count: run.count,
                                     output: out.baseAddress! + offset * dim)
                }
                try lookupRuns.withUnsafeBufferPointer { r in
                    try defaults.withUnsafeBufferPointer { d in
                        let device = host ? nil : DevicePointer<Float>(device: cache.device!, address: output.address)
                        try cache.lookup(CacheBatch(keys: k, runs: r, device: device, layout: layout), below: below, defaults: d,
                                         hits: &hits)
                    }
                }
            }
        }
        if !host { rows = Array(try output.download()[0..<(keys.count * dim)]) }
        return (rows, hits)
    }

    static func check(kernels: GPUKernels, dim: Int, int64Keys: Bool, storage: VectorStorage = .fp32,
                      random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        let device = kernels.device
        let perMember = 4000
        func randomKey() -> Int64 { int64Keys ? Int64(bitPattern: random.next()) : Int64(random.next() & 0xFFFF_FFFF) }
        let first = (0..<perMember).map { _ in randomKey() }
        let second = Array(first[0..<(perMember / 2)]) + (0..<(perMember / 2)).map { _ in randomKey() }
        let memberKeys = [first, second]
        let defaults: [Float] = [0.25, -1]
        let store = HashMapStore(partitions: 2)
        let cpu = try store.createTable("hps_et.selftest.cache", vecSize: dim, members: 2, expectedKeys: 2 * perMember,
                                        storage: storage)
        var memberVectors: [[Float]] = []
        for (m, keys) in memberKeys.enumerated() {
            let vectors = (0..<(keys.count * dim)).map { _ in random.nextFloat(-1, 1) }
            memberVectors.append(vectors)
            try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { v in _ = try cpu.insert(member: m, keys: k, vectors: v, parallelism: 1) }
            }
        }
        let runs: [(member: Int, count: Int)] = [(0, 640), (1, 640), (0, 640)]
        let n = runs.reduce(0) { $0 + $1.count }
        func query() -> [Int64] {
            runs.flatMap { run in
                (0..<run.count).map { _ in random.next() % 10 == 0 ? randomKey() : memberKeys[run.member][Int(random.next() % UInt64(perMember))] }
            }
        }
        /// The CPU's rows, and the keys it holds none of.
        func expected(_ keys: [Int64]) -> (rows: [Float], absent: Int) {
            GPUUpdateSelfTest.expected(cpu, keys: keys, runs: runs, dim: dim, defaults: defaults)
        }
        func firstDifference(_ got: [Float], _ want: [Float], _ keys: [Int64]) -> String? {
            for i in 0..<(n * dim) where got[i].bitPattern != want[i].bitPattern {
                return "key \(keys[i / dim]) element \(i % dim): GPU \(got[i]), CPU \(want[i])"
            }
            return nil
        }
        /// Whether the counts add up: every key counted once, the absent ones as defaults.
        func countsProblem(_ hits: TierHits, absent: Int) -> String? {
            if hits.perTier.reduce(0, +) + hits.totalMissing != n {
                return "the tiers answered \(hits.perTier) and \(hits.totalMissing) defaults, not \(n) keys in all"
            }
            if hits.totalMissing != absent { return "\(hits.totalMissing) keys counted as defaults, the CPU holds \(absent) of them nowhere" }
            return nil
        }
        let output = try DeviceBuffer<Float>(device: device, count: n * dim)
        var cases: [GPUSelfTest.Case] = []
        let stored = storage == .fp32 ? "" : ", \(storage.rawValue) storage"
        let label = "dynamic cache, vec \(dim), \(int64Keys ? "int64" : "int32") keys\(stored)"

        // 1. Synchronous fills at 30% capacity: rounds of random queries with
        // evictions, into device and host memory in turn.
        let small = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2, lower: cpu,
                                        defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys, storage: storage)
        var problem: String? = nil
        for round in 0..<6 where problem == nil {
            let keys = query()
            let (rows, hits) = try lookup(small, keys: keys, runs: runs, defaults: defaults, output: output, host: round % 2 == 1)
            let want = expected(keys)
            problem = firstDifference(rows, want.rows, keys) ?? countsProblem(hits, absent: want.absent)
            if problem == nil && round > 0 && hits.perTier[1] == 0 { problem = "no miss was counted as found in the tier below" }
            if problem == nil && small.count > small.capacity { problem = "holds \(small.count) keys, capacity \(small.capacity)" }
        }
        var details = small.detailedStatistics
        if problem == nil && details.evictions == 0 { problem = "no eviction happened at 30% capacity" }
        if problem == nil && details.rebuilds == 0 { problem = "the index was never rebuilt after evictions" }
        if problem == nil && small.statistics.hits != details.hits { problem = "the cache statistics disagree with the detailed ones" }
        cases.append(.init(name: "\(label), 30% capacity, misses filled before returning, 6 rounds into device and host memory",
                           passed: problem == nil,
                           detail: problem ?? "every element equal, keys counted where found; hit rate \(String(details.hitRate).prefix(5)), \(details.evictions) evictions, \(details.rebuilds) index rebuilds"))

        // 2. Asynchronous inserts: defaults first, the vectors after the insert.
        let lazy = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember, members: 2, lower: cpu,
                                       defaults: defaults, hitRateThreshold: 0, int64Keys: int64Keys, storage: storage)
        let keys = query()
        let (firstPass, firstHits) = try lookup(lazy, keys: keys, runs: runs, defaults: defaults, output: output, host: true)
        var defaultsOK = firstHits.totalMissing == n
        for i in 0..<n where defaultsOK {
            let member = i < 640 || i >= 1280 ? 0 : 1
            defaultsOK = firstPass[i * dim] == defaults[member]
        }
        lazy.applyPendingInserts()
        let (secondPass, secondHits) = try lookup(lazy, keys: keys, runs: runs, defaults: defaults, output: output, host: false)
        let want = expected(keys)
        problem = defaultsOK ? firstDifference(secondPass, want.rows, keys) : "the first lookup did not answer (and count) every key with the defaults"
        if problem == nil && secondHits.perTier[0] != n - want.absent {
            problem = "\(secondHits.perTier[0]) of \(n - want.absent) present keys hit after their insert"
        }
        cases.append(.init(name: "\(label), misses answered with defaults, then inserted", passed: problem == nil,
                           detail: problem ?? "defaults first, every element equal after the insert"))

        // 2b. Asynchronous inserts with evictions: after the inserts, the last
        // query's present keys all hit, and no insert failed.
        let evicting = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2, lower: cpu,
                                           defaults: defaults, hitRateThreshold: 0, int64Keys: int64Keys, storage: storage)
        var last: [Int64] = []
        for _ in 0..<3 {
            last = query()
            _ = try lookup(evicting, keys: last, runs: runs, defaults: defaults, output: output, host: false)
            evicting.applyPendingInserts()
        }
        let again = try lookup(evicting, keys: last, runs: runs, defaults: defaults, output: output, host: false)
        let present = n - expected(last).absent
        details = evicting.detailedStatistics
        problem = details.failedInserts > 0 ? "\(details.failedInserts) inserts failed: \(details.lastInsertError ?? "")"
            : details.evictions == 0 ? "no eviction happened"
            : again.hits.perTier[0] != present ? "\(again.hits.perTier[0]) of \(present) present keys hit after their inserts" : nil
        cases.append(.init(name: "\(label), 30% capacity, inserts after the lookup with evictions: the inserted keys hit",
                           passed: problem == nil,
                           detail: problem ?? "\(present) of \(present) present keys hit, \(details.evictions) evictions"))

        // 3. Capacity ≥ table: one pass, then every present key hits; the dense-input layout too.
        let full = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember, members: 2, lower: cpu,
                                       defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys, storage: storage)
        try full.prefill(keys: memberKeys, fraction: 1)
        let held = runs.flatMap { run in (0..<run.count).map { _ in memberKeys[run.member][Int(random.next() % UInt64(perMember))] } }
        let warm = try lookup(full, keys: held, runs: runs, defaults: defaults, output: output, host: false,
                              layout: .samplesByRun(keysPerSample: 8))
        let got = warm.rows, wantHeld = expected(held).rows
        problem = warm.hits.perTier[0] == n ? nil : "\(warm.hits.perTier[0]) of \(n) keys hit after pre-filling the whole table"
        if problem == nil {
            outer: for i in 0..<n {
                var r = 0, start = 0
                while i >= start + runs[r].count { start += runs[r].count; r += 1 }
                let j = i - start, o = ((j / 8) * runs.count + r) * 8 + j % 8
                for d in 0..<dim where got[o * dim + d].bitPattern != wantHeld[i * dim + d].bitPattern {
                    problem = "key \(held[i]) element \(d) in the dense-input layout"
                    break outer
                }
            }
        }
        cases.append(.init(name: "\(label), capacity = table, pre-filled: every key hits", passed: problem == nil,
                           detail: problem ?? "hit rate 1.0, every element equal"))

        // 3b. Device keys, as the demo and the C API look up: the runs go to
        // the device only when they change, and the kernel publishes each
        // lookup's miss count and zeroes its counter for the next one.
        // Repeats, a lookup without misses, other runs and back: every count
        // and element against the CPU (absent keys miss every time).
        let otherRuns: [(member: Int, count: Int)] = [(1, 1280), (0, 640)]
        func deviceLookup(_ keys: [Int64], runs lookupRuns: [(member: Int, count: Int)]) throws -> String? {
            try output.fill32(0xFFFF_FFFF)
            let wide = int64Keys ? try DeviceBuffer(device: device, copying: keys) : nil
            let narrow = int64Keys ? nil : try DeviceBuffer(device: device, copying: keys.map { UInt32(truncatingIfNeeded: $0) })
            let report = try full.lookup(deviceKeys: wide?.address ?? narrow!.address, count: n, runs: lookupRuns, output: output.address)
            withExtendedLifetime((wide, narrow)) {}
            let want = GPUUpdateSelfTest.expected(cpu, keys: keys, runs: lookupRuns, dim: dim, defaults: defaults)
            if report.keys - report.hits != want.absent {
                return "a lookup of runs \(lookupRuns.map(\.count)) counted \(report.keys - report.hits) misses, the CPU holds \(want.absent) of its keys nowhere"
            }
            return firstDifference(try output.download(), want.rows, keys)
        }
        let withAbsent = query()
        let otherKeys: [Int64] = otherRuns.flatMap { run in
            (0..<run.count).map { _ in random.next() % 10 == 0 ? randomKey() : memberKeys[run.member][Int(random.next() % UInt64(perMember))] }
        }
        problem = nil
        let sequence: [([Int64], [(member: Int, count: Int)])] = [(withAbsent, runs), (withAbsent, runs), (held, runs),
                                                                   (withAbsent, runs), (otherKeys, otherRuns), (withAbsent, runs)]
        for (keys, lookupRuns) in sequence where problem == nil {
            problem = try deviceLookup(keys, runs: lookupRuns)
        }
        cases.append(.init(name: "\(label), device keys: repeated runs sent once, each lookup's miss count from zero",
                           passed: problem == nil,
                           detail: problem ?? "6 lookups (repeats, none missing, other runs and back): every count and element equal"))

        // 4. uvm: the same rows in mapped host memory behind a cache of 30% of
        // the keys; misses are copied by the GPU from the mapped rows. Keys
        // from the host and from the device, with evictions, against the CPU store.
        let mapped = try GPUStaticTable(kernels: kernels, dim: dim, members: Array(zip(memberKeys, memberVectors)),
                                        defaults: defaults, int64Keys: int64Keys, placement: .mappedHost, storage: storage)
        let uvm = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2,
                                      source: .mappedTable(mapped), defaults: defaults, hitRateThreshold: 0.9, int64Keys: int64Keys)
        problem = nil
        for round in 0..<6 where problem == nil {
            let keys = query()
            let want = expected(keys)
            if round % 2 == 0 {
                let (rows, hits) = try lookup(uvm, keys: keys, runs: runs, defaults: defaults, output: output, host: round == 2)
                problem = firstDifference(rows, want.rows, keys) ?? countsProblem(hits, absent: want.absent)
            } else {
                // The keys stay alive on the device until the lookup returns.
                try output.fill32(0xFFFF_FFFF)
                let wide = int64Keys ? try DeviceBuffer(device: device, copying: keys) : nil
                let narrow = int64Keys ? nil : try DeviceBuffer(device: device, copying: keys.map { UInt32(truncatingIfNeeded: $0) })
                let address = wide?.address ?? narrow!.address
                _ = try uvm.lookup(deviceKeys: address, count: n, runs: runs, output: output.address)
                withExtendedLifetime((wide, narrow)) {}
                problem = firstDifference(try output.download(), want.rows, keys)
            }
            if problem == nil && uvm.count > uvm.capacity { problem = "holds \(uvm.count) keys, capacity \(uvm.capacity)" }
        }
        details = uvm.detailedStatistics
        if problem == nil && details.evictions == 0 { problem = "no eviction happened at 30% capacity" }
        if problem == nil && details.hits == 0 { problem = "no key hit the cache in 6 rounds" }
        if problem == nil && uvm.kind != "gpu_uvm" { problem = "the cache's kind is \(uvm.kind), not gpu_uvm" }
        cases.append(.init(name: "uvm cache (table in mapped host memory), vec \(dim), \(int64Keys ? "int64" : "int32") keys\(stored), 30% capacity, 6 rounds",
                           passed: problem == nil,
                           detail: problem ?? "every element equal; hit rate \(String(details.hitRate).prefix(5)), \(details.evictions) evictions"))
        return cases
    }

    /// Set once a background task has returned.
    final class Finished: Sendable {
        let flag = Locked(false)
        var value: Bool { flag.withLock { $0 } }
        func set() { flag.withLock { $0 = true } }
    }

    /// Runs `work` in a task until `done` holds (or 10 s pass), then cancels
    /// it and waits up to 5 s for it to return.
    /// - Returns: nil, or what went wrong.
    static func running(_ work: any BackgroundWork, until done: () -> Bool) -> String? {
        let finished = Finished()
        let task = Task.detached {
            try? await work.run(blocking: .dedicatedThread)
            finished.set()
        }
        var waited = 0
        while !done() && waited < 10_000 { usleep(1000); waited += 1 }
        let reached = done()
        task.cancel()
        waited = 0
        while !finished.value && waited < 5000 { usleep(1000); waited += 1 }
        if !reached { return "\(work.name) did not do its work within 10 s" }
        if !finished.value { return "\(work.name) did not return within 5 s of its cancellation" }
        return nil
    }

    /// The insert work inserts misses answered with the default without a
    /// later lookup, and the refresh work brings updated vectors to the GPU;
    /// both return when cancelled.
    static func checkBackgroundWork(kernels: GPUKernels, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        let device = kernels.device
        let dim = 16, keyCount = 2000
        let defaults: [Float] = [-3]
        let keys = (0..<keyCount).map { _ in Int64(bitPattern: random.next()) }
        var vectors = (0..<(keyCount * dim)).map { _ in random.nextFloat(-1, 1) }
        let store = HashMapStore(partitions: 2)
        let cpu = try store.createTable("hps_et.selftest.background", vecSize: dim, members: 1, expectedKeys: keyCount)
        func load(_ table: any EmbeddingStoreTable, _ rows: [Float]) throws {
            try keys.withUnsafeBufferPointer { k in
                try rows.withUnsafeBufferPointer { v in _ = try table.insert(member: 0, keys: k, vectors: v, parallelism: 1) }
            }
        }
        try load(cpu, vectors)
        let output = try DeviceBuffer<Float>(device: device, count: keyCount * dim)
        let runs = [(member: 0, count: keyCount)]
        var cases: [GPUSelfTest.Case] = []

        // Inserts: every key misses (and gets the default), the insert work inserts them, then all hit.
        let lazy = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: keyCount, members: 1,
                                       source: .tier(cpu), defaults: defaults, hitRateThreshold: 0, int64Keys: true,
                                       name: "the self-test's insert cache")
        var problem: String? = nil
        if lazy.backgroundWork.count != 1 { problem = "a cache with no refresh interval has \(lazy.backgroundWork.count) works, not the insert work alone" }
        let firstPass = try lookup(lazy, keys: keys, runs: runs, defaults: defaults, output: output, host: true)
        if problem == nil && firstPass.hits.totalMissing != keyCount { problem = "the first lookup answered \(keyCount - firstPass.hits.totalMissing) keys from an empty cache" }
        if problem == nil {
            problem = running(lazy.backgroundWork[0]) { lazy.detailedStatistics.inserts >= keyCount }
        }
        if problem == nil {
            let secondPass = try lookup(lazy, keys: keys, runs: runs, defaults: defaults, output: output, host: false)
            if secondPass.hits.perTier[0] != keyCount { problem = "\(secondPass.hits.perTier[0]) of \(keyCount) keys hit after the insert work ran" }
            else if let i = secondPass.rows.indices.first(where: { secondPass.rows[$0] != vectors[$0] }) {
                problem = "key \(keys[i / dim]) element \(i % dim): GPU \(secondPass.rows[i]), CPU \(vectors[i])"
            }
        }
        cases.append(.init(name: "dynamic cache's insert work: misses answered with the default are inserted in the background",
                           passed: problem == nil, detail: problem ?? "every key hits afterwards with the CPU's vector; the work returned when cancelled"))

        // Refresh: cache every key, change them below, the refresh work brings the new vectors.
        let refreshing = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: keyCount, members: 1,
                                             source: .tier(cpu), defaults: defaults, hitRateThreshold: 1.01, int64Keys: true,
                                             name: "the self-test's refreshed cache", refreshInterval: 0.02, refreshDelay: 0.01)
        problem = nil
        _ = try lookup(refreshing, keys: keys, runs: runs, defaults: defaults, output: output, host: false)
        vectors = vectors.map { $0 + 1 }
        try load(cpu, vectors)
        let refreshes = refreshing.detailedStatistics.refreshes
        guard let refresh = refreshing.backgroundWork.first(where: { $0 is GPUCacheRefreshWork }) else {
            cases.append(.init(name: "dynamic cache's refresh work", passed: false, detail: "a cache with a refresh interval has no refresh work"))
            return cases
        }
        problem = running(refresh) { refreshing.detailedStatistics.refreshes > refreshes }
        if problem == nil {
            let after = try lookup(refreshing, keys: keys, runs: runs, defaults: defaults, output: output, host: true)
            if let i = after.rows.indices.first(where: { after.rows[$0] != vectors[$0] }) {
                problem = "key \(keys[i / dim]) element \(i % dim): GPU \(after.rows[i]) after the refresh, CPU \(vectors[i])"
            } else if after.hits.perTier[0] != keyCount {
                problem = "\(after.hits.perTier[0]) of \(keyCount) keys hit after the refresh"
            }
        }
        if problem == nil, let error = refreshing.detailedStatistics.lastRefreshError { problem = "a refresh failed: \(error)" }
        cases.append(.init(name: "dynamic cache's refresh work: updates of the tier below reach the GPU", passed: problem == nil,
                           detail: problem ?? "every row equal to the updated CPU vector; the work returned when cancelled"))

        // A refresh of quantized rows: the tier below returns decoded rows, which the cache stores encoded again.
        for storage in [VectorStorage.int8, .fp8] {
            let quantized = try store.createTable("hps_et.selftest.refresh.\(storage.rawValue)", vecSize: dim, members: 1,
                                                  expectedKeys: keyCount, storage: storage)
            try load(quantized, vectors)
            let cache = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: keyCount, members: 1, source: .tier(quantized),
                                            defaults: defaults, hitRateThreshold: 1.01, int64Keys: true,
                                            name: "the self-test's \(storage.rawValue) cache", storage: storage)
            _ = try lookup(cache, keys: keys, runs: runs, defaults: defaults, output: output, host: false)
            try load(quantized, vectors.map { $0 * 3 - 0.5 })
            try cache.refresh()
            let after = try lookup(cache, keys: keys, runs: runs, defaults: defaults, output: output, host: true)
            let want = GPUUpdateSelfTest.expected(quantized, keys: keys, runs: runs, dim: dim, defaults: defaults).rows
            problem = after.hits.perTier[0] != keyCount ? "\(after.hits.perTier[0]) of \(keyCount) keys hit after the refresh" : nil
            if problem == nil, let i = after.rows.indices.first(where: { after.rows[$0].bitPattern != want[$0].bitPattern }) {
                problem = "key \(keys[i / dim]) element \(i % dim): GPU \(after.rows[i]) after the refresh, CPU \(want[i])"
            }
            cases.append(.init(name: "dynamic cache in \(storage.rawValue) storage, refreshed: the rows read below are stored again exactly",
                               passed: problem == nil, detail: problem ?? "every element equal to the CPU tier's after the refresh"))
        }
        return cases
    }
}
