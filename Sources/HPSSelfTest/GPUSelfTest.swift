package import HPSCUDA
import HPS
import HPSDemo

/// Compares every GPU lookup path with the CPU hash map on fresh random
/// data: vec sizes 1, 3, 16, 128 and 300, int64 and int32 keys, hits and
/// misses, fused members with overlapping keys, both output layouts, every
/// `vector_storage` (the CPU table quantizing as the GPU table does). The
/// GPU output is poisoned with NaN before each run, so an unwritten element
/// fails, and compared bit for bit.
package enum GPUSelfTest {
    /// One checked case.
    package struct Case: Sendable {
        /// What was checked.
        package var name: String
        /// Whether every element matched and the miss count agreed.
        package var passed: Bool
        /// What differed, if anything.
        package var detail: String
    }

    /// Runs every case on `kernels`' device.
    package static func run(kernels: GPUKernels, seed: UInt64 = 0x5EED) throws -> [Case] {
        var cases: [Case] = []
        var generator = SystemRandomNumberGenerator()
        var random = SplitMix64(seed: seed ^ generator.next())
        for int64Keys in [true, false] {
            for dim in [1, 3, 16, 128, 300] {
                cases += try check(kernels: kernels, dim: dim, int64Keys: int64Keys, random: &random)
            }
        }
        for dim in [3, 128] {
            cases += try check(kernels: kernels, dim: dim, int64Keys: true, placement: .mappedHost, random: &random)
        }
        for storage in VectorStorage.allCases where storage != .fp32 {
            for dim in [3, 64, 128] {
                cases += try check(kernels: kernels, dim: dim, int64Keys: true, storage: storage, random: &random)
            }
            cases += try check(kernels: kernels, dim: 128, int64Keys: true, placement: .mappedHost, storage: storage,
                               random: &random)
        }
        cases += try GPUCacheSelfTest.run(kernels: kernels, random: &random)
        cases += try GPUDeploymentSelfTest.run(deviceIndex: kernels.device.index, random: &random)
        cases += try GPUShardingSelfTest.run(deviceIndex: kernels.device.index, random: &random)
        return cases
    }

    static func check(kernels: GPUKernels, dim: Int, int64Keys: Bool, placement: GPUStaticTable.Placement = .device,
                      storage: VectorStorage = .fp32, random: inout SplitMix64) throws -> [Case] {
        let device = kernels.device
        let keysPerMember = 5000
        func randomKey(_ random: inout SplitMix64) -> Int64 {
            int64Keys ? Int64(bitPattern: random.next()) : Int64(random.next() & 0xFFFF_FFFF)
        }
        // Member 1 shares half of member 0's keys, with other vectors.
        var members: [(keys: [Int64], vectors: [Float])] = []
        let first = (0..<keysPerMember).map { _ in randomKey(&random) }
        let second = Array(first[0..<(keysPerMember / 2)]) + (0..<(keysPerMember / 2)).map { _ in randomKey(&random) }
        for keys in [first, second] {
            members.append((keys, (0..<(keys.count * dim)).map { _ in random.nextFloat(-1, 1) }))
        }
        let defaults: [Float] = [0.5, -2]
        let store = HashMapStore(partitions: 3)
        let cpu = try store.createTable("hps_et.selftest.t", vecSize: dim, members: 2, expectedKeys: 2 * keysPerMember,
                                        storage: storage)
        for (m, member) in members.enumerated() {
            try member.keys.withUnsafeBufferPointer { k in
                try member.vectors.withUnsafeBufferPointer { v in _ = try cpu.insert(member: m, keys: k, vectors: v, parallelism: 1) }
            }
        }
        let gpu = try GPUStaticTable(kernels: kernels, dim: dim, members: members, defaults: defaults, int64Keys: int64Keys,
                                     placement: placement, storage: storage)

        // Queries: 80% present keys (of either member), 20% absent; runs alternate members.
        let samples = 64, perSample = 5, runs = 4
        let perRun = samples * perSample
        var queryKeys: [Int64] = []
        var runMembers: [Int32] = []
        for r in 0..<runs {
            let member = r % 2
            runMembers.append(Int32(member))
            for _ in 0..<perRun {
                if random.next() % 5 == 0 {
                    queryKeys.append(randomKey(&random))
                } else {
                    queryKeys.append(members[Int(random.next() % 2)].keys[Int(random.next() % UInt64(keysPerMember))])
                }
            }
        }
        let n = queryKeys.count
        let stream = try CUDAStream(device: device)
        // The CPU's answer, in key order.
        var expected = [Float](repeating: 0, count: n * dim)
        var expectedMisses = 0
        expected.withUnsafeMutableBufferPointer { out in
            queryKeys.withUnsafeBufferPointer { keys in
                let cpuRuns = (0..<runs).map { r in
                    LookupRun(member: Int(runMembers[r]), keys: keys.baseAddress! + r * perRun, count: perRun,
                              output: out.baseAddress! + r * perRun * dim)
                }
                defaults.withUnsafeBufferPointer { d in
                    expectedMisses = cpuRuns.withUnsafeBufferPointer { cpu.lookup($0, defaults: d, missed: nil, parallelism: 1) }
                }
            }
        }
        let keyBuffer: DeviceBuffer<UInt8>
        if int64Keys {
            keyBuffer = try DeviceBuffer(device: device, count: n * 8)
            try stream.upload(queryKeys, to: keyBuffer.address)
        } else {
            let narrow = queryKeys.map { UInt32(truncatingIfNeeded: $0) }
            keyBuffer = try DeviceBuffer(device: device, count: n * 4)
            try stream.upload(narrow, to: keyBuffer.address)
        }
        let starts = try DeviceBuffer(device: device, copying: (0...runs).map { Int32($0 * perRun) })
        let memberBuffer = try DeviceBuffer(device: device, copying: runMembers)
        let output = try DeviceBuffer<Float>(device: device, count: n * dim)
        let misses = try DeviceBuffer<UInt32>(device: device, count: 1)
        var results: [Case] = []
        for layout in [GPUStaticTable.Layout.keyOrder, .samplesByRun] {
            try output.fill32(0xFFFF_FFFF)
            try misses.fill32(0)
            try gpu.lookup(keys: keyBuffer.address, count: n, runStarts: starts.address, runMembers: memberBuffer.address,
                           runs: runs, output: output.address, layout: layout, keysPerSample: perSample,
                           misses: misses.address, stream: stream)
            try stream.synchronize()
            let got = try output.download()
            let gotMisses = Int(try misses.download()[0])
            var mismatch: String? = nil
            outer: for i in 0..<n {
                var o = i
                if layout == .samplesByRun {
                    let r = i / perRun, j = i % perRun, s = j / perSample
                    o = (s * runs + r) * perSample + j % perSample
                }
                for d in 0..<dim where got[o * dim + d].bitPattern != expected[i * dim + d].bitPattern {
                    mismatch = "key \(queryKeys[i]) (index \(i)) element \(d): GPU \(got[o * dim + d]), CPU \(expected[i * dim + d])"
                    break outer
                }
            }
            if mismatch == nil && gotMisses != expectedMisses {
                mismatch = "GPU counted \(gotMisses) misses, CPU \(expectedMisses)"
            }
            results.append(Case(name: "\(placement == .device ? "static table" : "uvm table (vectors in mapped host memory)")\(storage == .fp32 ? "" : " in \(storage.rawValue)"), vec \(dim), \(int64Keys ? "int64" : "int32") keys, \(layout == .keyOrder ? "key order" : "dense-input layout"), \(n) keys, \(expectedMisses) misses",
                                passed: mismatch == nil, detail: mismatch ?? "all \(n * dim) elements equal"))
        }
        // A float16 output, in key order: each element the CPU's float rounded to half.
        let halfOutput = try DeviceBuffer<UInt16>(device: device, count: n * dim + 1)
        try halfOutput.fill32(0xFFFF_FFFF)
        try misses.fill32(0)
        try gpu.lookup(keys: keyBuffer.address, count: n, runStarts: starts.address, runMembers: memberBuffer.address,
                       runs: runs, output: halfOutput.address, element: .float16, misses: misses.address, stream: stream)
        try stream.synchronize()
        let halves = try halfOutput.download()
        var mismatch: String? = nil
        for i in 0..<(n * dim) where halves[i] != Float16(expected[i]).bitPattern {
            mismatch = "key \(queryKeys[i / dim]) element \(i % dim): GPU half bits \(halves[i]), CPU \(Float16(expected[i]).bitPattern)"
            break
        }
        results.append(Case(name: "\(placement == .device ? "static table" : "uvm table")\(storage == .fp32 ? "" : " in \(storage.rawValue)"), vec \(dim), \(int64Keys ? "int64" : "int32") keys, float16 output",
                            passed: mismatch == nil, detail: mismatch ?? "all \(n * dim) elements equal the CPU's rounded to half"))
        return results
    }
}
