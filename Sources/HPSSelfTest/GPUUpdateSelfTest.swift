import HPSCUDA
import HPS
import HPSDemo

/// Checks online updates of the GPU tables (`EmbeddingCache.update`)
/// against the CPU store below them, which takes each update first as
/// `HierarchicalParameterServer.update` does: a static table, a uvm cache
/// and a dynamic cache (at 30% of the keys, and holding every key so that
/// each update is in place), updated with rows of keys they hold, keys they
/// do not hold and keys repeated within one update. After the update, every
/// lookup (into host memory, device memory, and the dense-input layout) must
/// equal the CPU's bit for bit, the keys added by the update included (the
/// static and uvm tables answer those from the tiers below), and the report
/// must count the rows written and the keys not held.
enum GPUUpdateSelfTest {
    static func check(kernels: GPUKernels, dim: Int, int64Keys: Bool, storage: VectorStorage = .fp32,
                      random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        let device = kernels.device
        let perMember = 3000
        func randomKey() -> Int64 { int64Keys ? Int64(bitPattern: random.next()) : Int64(random.next() & 0xFFFF_FFFF) }
        let memberKeys = (0..<2).map { _ in (0..<perMember).map { _ in randomKey() } }
        let memberVectors = memberKeys.map { keys in (0..<(keys.count * dim)).map { _ in random.nextFloat(-1, 1) } }
        let defaults: [Float] = [0.5, -2]
        let runs: [(member: Int, count: Int)] = [(0, 512), (1, 512)]
        let n = runs.reduce(0) { $0 + $1.count }
        let output = try DeviceBuffer<Float>(device: device, count: n * dim)
        let label = "vec \(dim), \(int64Keys ? "int64" : "int32") keys\(storage == .fp32 ? "" : ", \(storage.rawValue) storage")"
        var cases: [GPUSelfTest.Case] = []

        for kind in ["static", "uvm", "dynamic 30%", "dynamic, every key"] {
            // A fresh CPU store and table per kind: each update changes them.
            let store = HashMapStore(partitions: 2)
            let cpu = try store.createTable("hps_et.selftest.update", vecSize: dim, members: 2, expectedKeys: 2 * perMember + 400,
                                            storage: storage)
            for m in 0..<2 {
                try memberKeys[m].withUnsafeBufferPointer { k in
                    try memberVectors[m].withUnsafeBufferPointer { v in _ = try cpu.insert(member: m, keys: k, vectors: v, parallelism: 1) }
                }
            }
            let below = TierChain(tiers: [cpu])
            let members = Array(zip(memberKeys, memberVectors))
            let cache: any EmbeddingCache
            switch kind {
            case "static":
                cache = try GPUStaticTable(kernels: kernels, dim: dim, members: members, defaults: defaults, int64Keys: int64Keys,
                                           storage: storage)
            case "uvm":
                let mapped = try GPUStaticTable(kernels: kernels, dim: dim, members: members, defaults: defaults,
                                                int64Keys: int64Keys, placement: .mappedHost, storage: storage)
                cache = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2,
                                            source: .mappedTable(mapped), defaults: defaults, hitRateThreshold: 0.9,
                                            int64Keys: int64Keys)
            case "dynamic 30%":
                cache = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2,
                                            lower: cpu, defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys,
                                            storage: storage)
            default:
                let full = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember + 400, members: 2,
                                               lower: cpu, defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys,
                                               storage: storage)
                try full.prefill(keys: memberKeys, fraction: 1)
                cache = full
            }
            func query(_ extra: [[Int64]]) -> [Int64] {
                runs.flatMap { run in
                    (0..<run.count).map { _ -> Int64 in
                        let pick = random.next() % 10
                        if pick < 3 && !extra[run.member].isEmpty { return extra[run.member][Int(random.next() % UInt64(extra[run.member].count))] }
                        if pick == 3 { return randomKey() }
                        return memberKeys[run.member][Int(random.next() % UInt64(perMember))]
                    }
                }
            }
            // Warm the caches: the keys looked up before the update are cached.
            for _ in 0..<2 { _ = try GPUCacheSelfTest.lookup(cache, keys: query([[], []]), runs: runs, defaults: defaults,
                                                              output: output, host: false, below: below) }

            // The update: per member 300 held keys (40 of them twice, the
            // second row winning) and 50 new keys; the CPU store first.
            var problem: String? = nil
            var updated: [[Int64]] = [[], []]
            var rowsWritten = 0, unheld = 0, expectedUnheld = 0, expectedHeld = 0
            for m in 0..<2 {
                let held = (0..<300).map { _ in memberKeys[m][Int(random.next() % UInt64(perMember))] }
                let fresh = (0..<50).map { _ in randomKey() }
                let keys = held + fresh + held[0..<40]
                let vectors = (0..<(keys.count * dim)).map { _ in random.nextFloat(-1, 1) }
                expectedHeld += Set(held).count
                expectedUnheld += Set(fresh).subtracting(memberKeys[m]).count
                updated[m] = Array(Set(keys))
                try keys.withUnsafeBufferPointer { k in
                    try vectors.withUnsafeBufferPointer { v in
                        _ = try cpu.insert(member: m, keys: k, vectors: v, parallelism: 1)
                        let report = try cache.update(member: m, keys: k, vectors: v)
                        rowsWritten += report.rows
                        unheld += report.unheldKeys
                    }
                }
            }
            switch kind {
            case "static", "dynamic, every key":
                if rowsWritten != expectedHeld { problem = "the update wrote \(rowsWritten) rows; the table holds \(expectedHeld) of its keys" }
            default:
                if rowsWritten > expectedHeld { problem = "the update wrote \(rowsWritten) rows for \(expectedHeld) held keys" }
            }
            let fixedKeys = kind == "static" || kind == "uvm"
            if problem == nil && unheld != (fixedKeys ? expectedUnheld : 0) {
                problem = "the update counted \(unheld) keys not held, not \(fixedKeys ? expectedUnheld : 0)"
            }

            // Every lookup after it equals the CPU, updated and new keys included.
            for round in 0..<4 where problem == nil {
                let keys = query(updated)
                let want = expected(cpu, keys: keys, runs: runs, dim: dim, defaults: defaults)
                let layout: OutputLayout = round == 3 ? .samplesByRun(keysPerSample: 4) : .runs
                let (rows, hits) = try GPUCacheSelfTest.lookup(cache, keys: keys, runs: runs, defaults: defaults, output: output,
                                                               host: round == 1, layout: layout, below: below)
                for i in 0..<n where problem == nil {
                    var o = i
                    if round == 3 {
                        let r = i / 512, j = i % 512
                        o = ((j / 4) * runs.count + r) * 4 + j % 4
                    }
                    for e in 0..<dim where rows[o * dim + e].bitPattern != want.rows[i * dim + e].bitPattern {
                        problem = "round \(round)\(round == 3 ? " (dense-input layout)" : round == 1 ? " (host memory)" : ""): key \(keys[i]) element \(e): GPU \(rows[o * dim + e]), CPU \(want.rows[i * dim + e])"
                        break
                    }
                }
                if problem == nil && hits.totalMissing != want.absent {
                    problem = "round \(round): \(hits.totalMissing) keys counted as defaults, the CPU holds \(want.absent) of them nowhere"
                }
                if problem == nil && fixedKeys && round == 0 && hits.perTier[1] == 0 {
                    problem = "no key was counted as answered by the tier below, though the query holds keys the update added"
                }
            }
            if problem == nil, kind == "dynamic, every key" {
                // In place: the cache held every key, so every present key still hits.
                let keys = query(updated)
                let (_, hits) = try GPUCacheSelfTest.lookup(cache, keys: keys, runs: runs, defaults: defaults, output: output,
                                                            host: false, below: below)
                let want = expected(cpu, keys: keys, runs: runs, dim: dim, defaults: defaults)
                let added = keys.filter { key in updated.contains { $0.contains(key) } && !memberKeys.contains { $0.contains(key) } }.count
                if hits.perTier[0] < n - want.absent - added {
                    problem = "\(hits.perTier[0]) of \(n - want.absent - added) held keys hit after the update: rows were dropped, not updated"
                }
            }
            cases.append(.init(name: "online update of a GPU \(kind) table, \(label): held, new and repeated keys",
                               passed: problem == nil,
                               detail: problem ?? "\(rowsWritten) rows written, \(unheld) keys not held; 4 lookups after it equal the CPU's bit for bit"))
        }
        return cases
    }

    /// The CPU table's rows for the keys (run after run) and how many no tier holds.
    static func expected(_ cpu: any EmbeddingStoreTable, keys: [Int64], runs: [(member: Int, count: Int)], dim: Int,
                         defaults: [Float]) -> (rows: [Float], absent: Int) {
        var out = [Float](repeating: 0, count: keys.count * dim)
        var absent = 0
        out.withUnsafeMutableBufferPointer { o in
            keys.withUnsafeBufferPointer { k in
                var offset = 0
                let cpuRuns = runs.map { run -> LookupRun in
                    defer { offset += run.count }
                    return LookupRun(member: run.member, keys: k.baseAddress! + offset, count: run.count, output: o.baseAddress! + offset * dim)
                }
                defaults.withUnsafeBufferPointer { d in
                    absent = cpuRuns.withUnsafeBufferPointer { cpu.lookup($0, defaults: d, missed: nil, parallelism: 1) }
                }
            }
        }
        return (out, absent)
    }
}
