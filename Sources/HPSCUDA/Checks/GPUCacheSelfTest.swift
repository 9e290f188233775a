import HPS

/// Checks the GPU dynamic cache against the CPU store it sits in front of:
/// filled synchronously, every output row must equal the CPU's (hits,
/// misses, evictions and absent keys alike); filled asynchronously, misses
/// read the default first and the real vector once inserted; with capacity
/// at least the table's keys, every key hits after one pass.
enum GPUCacheSelfTest {
    static func run(kernels: GPUKernels, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        var cases: [GPUSelfTest.Case] = []
        for (dim, int64Keys) in [(3, true), (16, false), (128, true)] {
            cases += try check(kernels: kernels, dim: dim, int64Keys: int64Keys, random: &random)
        }
        return cases
    }

    static func check(kernels: GPUKernels, dim: Int, int64Keys: Bool, random: inout SplitMix64) throws -> [GPUSelfTest.Case] {
        let device = kernels.device
        let perMember = 4000
        func randomKey() -> Int64 { int64Keys ? Int64(bitPattern: random.next()) : Int64(random.next() & 0xFFFF_FFFF) }
        let first = (0..<perMember).map { _ in randomKey() }
        let second = Array(first[0..<(perMember / 2)]) + (0..<(perMember / 2)).map { _ in randomKey() }
        let memberKeys = [first, second]
        let defaults: [Float] = [0.25, -1]
        let store = HashMapStore(partitions: 2)
        let cpu = try store.createTable("hps_et.selftest.cache", vecSize: dim, members: 2, expectedKeys: 2 * perMember)
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
        func expected(_ keys: [Int64]) -> [Float] {
            var out = [Float](repeating: 0, count: n * dim)
            out.withUnsafeMutableBufferPointer { o in
                keys.withUnsafeBufferPointer { k in
                    var offset = 0
                    let cpuRuns = runs.map { run -> LookupRun in
                        defer { offset += run.count }
                        return LookupRun(member: run.member, keys: k.baseAddress! + offset, count: run.count,
                                         output: o.baseAddress! + offset * dim)
                    }
                    defaults.withUnsafeBufferPointer { d in
                        _ = cpuRuns.withUnsafeBufferPointer { cpu.lookup($0, defaults: d, missed: nil, parallelism: 1) }
                    }
                }
            }
            return out
        }
        func firstDifference(_ got: [Float], _ want: [Float], _ keys: [Int64]) -> String? {
            for i in 0..<(n * dim) where got[i].bitPattern != want[i].bitPattern {
                return "key \(keys[i / dim]) element \(i % dim): GPU \(got[i]), CPU \(want[i])"
            }
            return nil
        }
        let output = try DeviceBuffer<Float>(device: device, count: n * dim)
        var cases: [GPUSelfTest.Case] = []
        let label = "dynamic cache, vec \(dim), \(int64Keys ? "int64" : "int32") keys"

        // 1. Synchronous fills at 30% capacity: rounds of random queries with evictions.
        let small = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2, lower: cpu,
                                        defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys)
        var problem: String? = nil
        for _ in 0..<6 where problem == nil {
            let keys = query()
            try output.fill32(0xFFFF_FFFF)
            _ = try small.lookup(keys: keys, runs: runs, output: output.address)
            problem = firstDifference(try output.download(), expected(keys), keys)
            if problem == nil && small.count > small.capacity { problem = "holds \(small.count) keys, capacity \(small.capacity)" }
        }
        if problem == nil && small.statistics.evictions == 0 { problem = "no eviction happened at 30% capacity" }
        if problem == nil && small.statistics.rebuilds == 0 { problem = "the index was never rebuilt after evictions" }
        cases.append(.init(name: "\(label), 30% capacity, misses filled before returning, 6 rounds", passed: problem == nil,
                           detail: problem ?? "every element equal; hit rate \(String(small.statistics.hitRate).prefix(5)), \(small.statistics.evictions) evictions, \(small.statistics.rebuilds) index rebuilds"))

        // 2. Asynchronous inserts: defaults first, the vectors after the insert.
        let lazy = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember, members: 2, lower: cpu,
                                       defaults: defaults, hitRateThreshold: 0, int64Keys: int64Keys)
        let keys = query()
        try output.fill32(0xFFFF_FFFF)
        let report = try lazy.lookup(keys: keys, runs: runs, output: output.address)
        let firstPass = try output.download()
        var defaultsOK = !report.filled
        for i in 0..<n where defaultsOK {
            let member = i < 640 || i >= 1280 ? 0 : 1
            defaultsOK = firstPass[i * dim] == defaults[member]
        }
        lazy.waitForInserts()
        try output.fill32(0xFFFF_FFFF)
        _ = try lazy.lookup(keys: keys, runs: runs, output: output.address)
        problem = defaultsOK ? firstDifference(try output.download(), expected(keys), keys) : "the first lookup did not answer with the defaults"
        cases.append(.init(name: "\(label), misses answered with defaults, then inserted", passed: problem == nil,
                           detail: problem ?? "defaults first, every element equal after the insert"))

        // 2b. Asynchronous inserts with evictions: after the inserts, the last
        // query's present keys all hit, and no insert failed.
        let evicting = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2, lower: cpu,
                                           defaults: defaults, hitRateThreshold: 0, int64Keys: int64Keys)
        var last: [Int64] = []
        for _ in 0..<3 {
            last = query()
            _ = try evicting.lookup(keys: last, runs: runs, output: output.address)
            evicting.waitForInserts()
        }
        try output.fill32(0xFFFF_FFFF)
        let again = try evicting.lookup(keys: last, runs: runs, output: output.address)
        var presentCount = 0
        for (r, run) in runs.enumerated() {
            let start = runs[..<r].reduce(0) { $0 + $1.count }
            let known = Set(memberKeys[run.member])
            presentCount += last[start..<(start + run.count)].filter { known.contains($0) }.count
        }
        problem = evicting.statistics.failedInserts > 0 ? "\(evicting.statistics.failedInserts) inserts failed: \(evicting.statistics.lastInsertError ?? "")"
            : evicting.statistics.evictions == 0 ? "no eviction happened"
            : again.hits != presentCount ? "\(again.hits) of \(presentCount) present keys hit after their inserts" : nil
        cases.append(.init(name: "\(label), 30% capacity, inserts after the lookup with evictions: the inserted keys hit",
                           passed: problem == nil,
                           detail: problem ?? "\(presentCount) of \(presentCount) present keys hit, \(evicting.statistics.evictions) evictions"))

        // 3. Capacity ≥ table: one pass, then every present key hits; the dense-input layout too.
        let full = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember, members: 2, lower: cpu,
                                       defaults: defaults, hitRateThreshold: 1.01, int64Keys: int64Keys)
        try full.prefill(keys: memberKeys, fraction: 1)
        let present = runs.flatMap { run in (0..<run.count).map { _ in memberKeys[run.member][Int(random.next() % UInt64(perMember))] } }
        try output.fill32(0xFFFF_FFFF)
        let warm = try full.lookup(keys: present, runs: runs, output: output.address, layout: .samplesByRun, keysPerSample: 8)
        let got = try output.download(), want = expected(present)
        problem = warm.hits == n ? nil : "\(warm.hits) of \(n) keys hit after pre-filling the whole table"
        if problem == nil {
            outer: for i in 0..<n {
                var r = 0, start = 0
                while i >= start + runs[r].count { start += runs[r].count; r += 1 }
                let j = i - start, o = ((j / 8) * runs.count + r) * 8 + j % 8
                for d in 0..<dim where got[o * dim + d].bitPattern != want[i * dim + d].bitPattern {
                    problem = "key \(present[i]) element \(d) in the dense-input layout"
                    break outer
                }
            }
        }
        cases.append(.init(name: "\(label), capacity = table, pre-filled: every key hits", passed: problem == nil,
                           detail: problem ?? "hit rate 1.0, every element equal"))

        // 4. uvm: the same rows in mapped host memory behind a cache of 30% of
        // the keys; misses are copied by the GPU from the mapped rows. Keys
        // from the host and from the device (then the misses' keys are
        // gathered on the device), with evictions, against the CPU store.
        let mapped = try GPUStaticTable(kernels: kernels, dim: dim, members: Array(zip(memberKeys, memberVectors)),
                                        defaults: defaults, int64Keys: int64Keys, placement: .mappedHost)
        let uvm = try GPUDynamicCache(kernels: kernels, dim: dim, capacity: 2 * perMember * 3 / 10, members: 2,
                                      source: .mappedTable(mapped), defaults: defaults, hitRateThreshold: 0.9, int64Keys: int64Keys)
        problem = nil
        for round in 0..<6 where problem == nil {
            let keys = query()
            try output.fill32(0xFFFF_FFFF)
            if round % 2 == 0 {
                _ = try uvm.lookup(keys: keys, runs: runs, output: output.address)
            } else {
                // The keys stay alive on the device until the lookup returns.
                let wide = int64Keys ? try DeviceBuffer(device: device, copying: keys) : nil
                let narrow = int64Keys ? nil : try DeviceBuffer(device: device, copying: keys.map { UInt32(truncatingIfNeeded: $0) })
                let address = wide?.address ?? narrow!.address
                _ = try uvm.lookup(deviceKeys: address, count: n, runs: runs, output: output.address)
                withExtendedLifetime((wide, narrow)) {}
            }
            problem = firstDifference(try output.download(), expected(keys), keys)
            if problem == nil && uvm.count > uvm.capacity { problem = "holds \(uvm.count) keys, capacity \(uvm.capacity)" }
        }
        if problem == nil && uvm.statistics.evictions == 0 { problem = "no eviction happened at 30% capacity" }
        if problem == nil && uvm.statistics.hits == 0 { problem = "no key hit the cache in 6 rounds" }
        cases.append(.init(name: "uvm cache (table in mapped host memory), vec \(dim), \(int64Keys ? "int64" : "int32") keys, 30% capacity, 6 rounds",
                           passed: problem == nil,
                           detail: problem ?? "every element equal; hit rate \(String(uvm.statistics.hitRate).prefix(5)), \(uvm.statistics.evictions) evictions"))
        return cases
    }
}
