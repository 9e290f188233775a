import CHPSSupport
import Glibc
import HPSStoreTestSupport
import Testing

@testable import HPS

struct HashMapStoreTests {
    /// A batch of fresh keys drawn from a small range (so that some repeat
    /// earlier ones) and random vectors.
    private func batch(_ random: inout SplitMix64, count: Int, vecSize: Int, keySpace: UInt64) -> ([Int64], [Float]) {
        let keys = (0..<count).map { _ in Int64(random.next() % keySpace) - Int64(keySpace / 2) }
        let vectors = (0..<(count * vecSize)).map { _ in random.nextFloat(-1, 1) }
        return (keys, vectors)
    }

    @Test("inserts, lookups and erases agree with a Dictionary", arguments: [1, 3, 16])
    func matchesDictionary(partitions: Int) throws {
        let store = HashMapStore(partitions: partitions)
        let vecSize = 5
        let table = try store.createTable("hps_et.m.t", vecSize: vecSize, members: 1, expectedKeys: 1000)
        var reference: [Int64: [Float]] = [:]
        var random = SplitMix64(seed: 100 + UInt64(partitions))
        for round in 0..<12 {
            let (keys, vectors) = batch(&random, count: 2000, vecSize: vecSize, keySpace: 20_000)
            let counts = try insert(table, keys: keys, vectors: vectors)
            var fresh = 0
            for (i, key) in keys.enumerated() {
                if reference[key] == nil { fresh += 1 }
                reference[key] = Array(vectors[(i * vecSize)..<((i + 1) * vecSize)])
            }
            #expect(counts.inserted == fresh)
            #expect(counts.inserted + counts.replaced == keys.count)
            #expect(counts.evicted == 0)

            if round % 3 == 2 {
                let victims = Array(Set((0..<500).map { _ in Int64(random.next() % 20_000) - 10_000 }))
                let present = victims.filter { reference[$0] != nil }.count
                #expect(erase(table, keys: victims) == present)
                for key in victims { reference[key] = nil }
            }
            #expect(table.count == reference.count)

            let probe = (0..<3000).map { _ in Int64(random.next() % 24_000) - 12_000 }
            let (out, missed) = lookup(table, keys: probe, defaults: [-3])
            #expect(bitwiseEqual(out, expectedRows(probe, in: reference, vecSize: vecSize, defaultValue: -3)))
            #expect(missed == probe.indices.filter { reference[probe[$0]] == nil })
        }
    }

    @Test("a miss gets the member's default and its flat index, ascending, across runs")
    func missesAcrossRuns() throws {
        let store = HashMapStore(partitions: 3)
        let table = try store.createTable("hps_et.m.f", vecSize: 2, members: 2, expectedKeys: 10)
        try insert(table, member: 0, keys: [1, 2], vectors: [1, 1, 2, 2])
        try insert(table, member: 1, keys: [3], vectors: [3, 3])

        let keys0: [Int64] = [1, 9, 2], keys1: [Int64] = [1, 3]
        var out0 = [Float](repeating: .nan, count: 6), out1 = [Float](repeating: .nan, count: 4)
        var missed = [Int](repeating: -1, count: 5)
        let defaults: [Float] = [-1, -2]
        let misses = keys0.withUnsafeBufferPointer { k0 in
            keys1.withUnsafeBufferPointer { k1 in
                out0.withUnsafeMutableBufferPointer { o0 in
                    out1.withUnsafeMutableBufferPointer { o1 in
                        let runs = [LookupRun(member: 0, keys: k0.baseAddress!, count: 3, output: o0.baseAddress!),
                                    LookupRun(member: 1, keys: k1.baseAddress!, count: 2, output: o1.baseAddress!)]
                        return runs.withUnsafeBufferPointer { runs in
                            defaults.withUnsafeBufferPointer {
                                table.lookup(runs, defaults: $0, missed: &missed, parallelism: 1)
                            }
                        }
                    }
                }
            }
        }
        #expect(misses == 2)
        #expect(Array(missed[0..<2]) == [1, 3])
        #expect(out0 == [1, 1, -1, -1, 2, 2])
        #expect(out1 == [-2, -2, 3, 3])
    }

    @Test("a lookup without defaults leaves missing rows untouched")
    func nilDefaultsLeaveRows() throws {
        let store = HashMapStore(partitions: 2)
        let table = try store.createTable("t", vecSize: 2, members: 1, expectedKeys: 4)
        try insert(table, keys: [7], vectors: [7, 8])
        let keys: [Int64] = [8, 7]
        var out: [Float] = [42, 43, .nan, .nan]
        let misses = keys.withUnsafeBufferPointer { k in
            out.withUnsafeMutableBufferPointer { o in
                [LookupRun(member: 0, keys: k.baseAddress!, count: 2, output: o.baseAddress!)].withUnsafeBufferPointer {
                    table.lookup($0, defaults: nil, missed: nil, parallelism: 1)
                }
            }
        }
        #expect(misses == 1)
        #expect(out == [42, 43, 7, 8])
    }

    @Test("a table created for no keys grows to hold 100,000")
    func growsFromEmpty() throws {
        let store = HashMapStore(partitions: 4)
        let table = try store.createTable("grow", vecSize: 2, members: 1, expectedKeys: 0)
        let source = RandomTable(count: 100_000, vecSize: 2, seed: 200)
        // In batches, so the table grows between inserts as well as within them.
        var inserted = 0
        for start in stride(from: 0, to: 100_000, by: 25_000) {
            let keys = Array(source.keys[start..<(start + 25_000)])
            let vectors = Array(source.vectors[(start * 2)..<((start + 25_000) * 2)])
            inserted += try insert(table, keys: keys, vectors: vectors).inserted
        }
        #expect(inserted == 100_000)
        #expect(table.count == 100_000)
        let (out, missed) = lookup(table, keys: source.keys)
        #expect(missed.isEmpty)
        #expect(bitwiseEqual(out, source.vectors))
    }

    @Test("erased keys miss, and re-inserted keys return their new vectors")
    func eraseThenReinsert() throws {
        let store = HashMapStore(partitions: 3)
        let table = try store.createTable("erase", vecSize: 3, members: 1, expectedKeys: 2000)
        let source = RandomTable(count: 2000, vecSize: 3, seed: 300)
        try insert(table, keys: source.keys, vectors: source.vectors)
        let gone = Array(source.keys[0..<1000])
        #expect(erase(table, keys: gone) == 1000)
        #expect(erase(table, keys: gone) == 0)
        #expect(table.count == 1000)

        let (afterErase, missed) = lookup(table, keys: source.keys, defaults: [9])
        #expect(missed == Array(0..<1000))
        #expect(afterErase[0..<3000].allSatisfy { $0 == 9 })
        #expect(bitwiseEqual(Array(afterErase[3000...]), Array(source.vectors[3000...])))

        let fresh = RandomTable(keys: gone, vecSize: 3, seed: 301)
        let counts = try insert(table, keys: fresh.keys, vectors: fresh.vectors)
        #expect(counts == InsertCounts(inserted: 1000, replaced: 0, evicted: 0))
        #expect(table.count == 2000)
        let (again, missedAgain) = lookup(table, keys: source.keys)
        #expect(missedAgain.isEmpty)
        #expect(bitwiseEqual(again, fresh.vectors + Array(source.vectors[3000...])))
    }

    @Test("a key repeated within one insert keeps its last vector")
    func repeatInBatch() throws {
        let store = HashMapStore(partitions: 4)
        let table = try store.createTable("repeat", vecSize: 1, members: 1, expectedKeys: 4)
        let counts = try insert(table, keys: [5, 6, 5, 5], vectors: [1, 2, 3, 4])
        #expect(counts == InsertCounts(inserted: 2, replaced: 2, evicted: 0))
        #expect(lookup(table, keys: [5, 6]).vectors == [4, 2])
    }

    @Test("the same key in two members of a fused table returns each member's own vector")
    func fusedMembersKeptApart() throws {
        let store = HashMapStore(partitions: 3)
        let table = try store.createTable("fused", vecSize: 4, members: 3, expectedKeys: 3000)
        let shared = RandomTable(count: 1000, vecSize: 4, seed: 400)
        let members = (0..<3).map { RandomTable(keys: shared.keys, vecSize: 4, seed: 401 + UInt64($0)) }
        for (m, t) in members.enumerated() { try insert(table, member: m, keys: t.keys, vectors: t.vectors) }
        #expect(table.count == 3000)

        for (m, t) in members.enumerated() {
            let (out, missed) = lookup(table, member: m, keys: t.keys)
            #expect(missed.isEmpty)
            #expect(bitwiseEqual(out, t.vectors), "member \(m)")
        }
        // Erasing from one member leaves the others alone.
        #expect(erase(table, member: 1, keys: Array(shared.keys[0..<10])) == 10)
        #expect(lookup(table, member: 1, keys: Array(shared.keys[0..<10])).missed == Array(0..<10))
        #expect(bitwiseEqual(lookup(table, member: 0, keys: Array(shared.keys[0..<10])).vectors,
                             Array(members[0].vectors[0..<40])))
        #expect(bitwiseEqual(lookup(table, member: 2, keys: Array(shared.keys[0..<10])).vectors,
                             Array(members[2].vectors[0..<40])))
    }

    @Test("a bucket's key matches are the slots whose whole 64-bit key is equal, not half of it")
    func bucketKeyMatches() {
        let bucket = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        defer { bucket.deallocate() }
        let keys = bucket.bindMemory(to: Int64.self, capacity: 8)
        var random = SplitMix64(seed: 77)
        for trial in 0..<20_000 {
            let wanted = Int64(bitPattern: random.next())
            // Each slot: the key itself, the key with only its high or only its
            // low 32 bits changed, or another key; the three words after the
            // keys (the refs) are random and never count.
            for slot in 0..<8 {
                let other = Int64(bitPattern: random.next())
                switch random.next() % 4 {
                case 0: keys[slot] = wanted
                case 1: keys[slot] = wanted ^ (other | 1) << 32
                case 2: keys[slot] = wanted ^ Int64(UInt32(truncatingIfNeeded: other) | 1)
                default: keys[slot] = other
                }
            }
            var expected: UInt32 = 0
            for slot in 0..<5 where keys[slot] == wanted { expected |= 1 << slot }
            let matches = hps_bucket_key_matches(bucket, wanted)
            #expect(matches == expected, "trial \(trial): keys \((0..<5).map { keys[$0] }), wanted \(wanted)")
            if matches != expected { return }
        }
        for extreme in [Int64.min, Int64.max, -1, 0] {
            for slot in 0..<8 { keys[slot] = extreme }
            #expect(hps_bucket_key_matches(bucket, extreme) == 0b11111)
            #expect(hps_bucket_key_matches(bucket, extreme &+ 1) == 0)
        }
    }

    @Test("in a crowded index the same key of eight members, erased in some, returns each member's own vector or a miss")
    func sameKeyCrowdedBuckets() throws {
        let store = HashMapStore(partitions: 1)
        let members = 8
        let table = try store.createTable("crowded", vecSize: 2, members: members, expectedKeys: 1)
        let keys: [Int64] = [7, -7, 1 << 40, (1 << 40) | 7, 0]
        for m in 0..<members {
            try insert(table, member: m, keys: keys, vectors: keys.flatMap { [Float(m), Float($0 & 0xFFFF)] })
        }
        // Erasing leaves the key in its slot with an empty ref: it must miss, not match.
        for m in stride(from: 1, to: members, by: 2) { #expect(erase(table, member: m, keys: [keys[0], keys[3]]) == 2) }
        for m in 0..<members {
            let erased = m % 2 == 1
            let (out, missed) = lookup(table, member: m, keys: keys, defaults: [Float](repeating: -1, count: members))
            #expect(missed == (erased ? [0, 3] : []), "member \(m)")
            for (i, key) in keys.enumerated() {
                let gone = erased && (i == 0 || i == 3)
                #expect(Array(out[(2 * i)..<(2 * i + 2)]) == (gone ? [-1, -1] : [Float(m), Float(key & 0xFFFF)]),
                        "member \(m), key \(key)")
            }
        }
    }

    @Test("after an insert no page of a partition's vector arena past its rows stays resident")
    func arenaTailReleased() throws {
        let store = HashMapStore(partitions: 16)
        let vecSize = 64
        // Room for 200,000 keys, 100,000 inserted: every partition's arena
        // (over 1 MiB, so mapped in huge pages) has unused rows at its end.
        let table = try store.hashMapTable("tail", vecSize: vecSize, members: 1, expectedKeys: 200_000)
        let rows = RandomTable(count: 100_000, vecSize: vecSize, seed: 9)
        try insert(table, keys: rows.keys, vectors: rows.vectors)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var checked = 0
        for partition in table.partitions {
            let used = (partition.count * vecSize * 4 + page - 1) / page * page
            let end = (partition.rowCapacity * vecSize * 4 + page - 1) / page * page
            guard end > used else { continue }
            var resident = [UInt8](repeating: 0, count: (end - used) / page)
            #expect(mincore(UnsafeMutableRawPointer(partition.vectors) + used, end - used, &resident) == 0)
            let kept = resident.filter { $0 & 1 != 0 }.count
            #expect(kept == 0, "\(kept) of \(resident.count) pages past the rows in use are resident")
            checked += 1
        }
        #expect(checked == 16)
        // The released pages take rows again.
        let more = RandomTable(count: 60_000, vecSize: vecSize, seed: 10)
        try insert(table, keys: more.keys, vectors: more.vectors)
        #expect(bitwiseEqual(lookup(table, keys: rows.keys + more.keys).vectors, rows.vectors + more.vectors))
    }

    @Test("creating a table again returns it; another layout is refused")
    func createTableAgain() throws {
        let store = HashMapStore(partitions: 2)
        let first = try store.createTable("a", vecSize: 4, members: 2, expectedKeys: 10)
        let again = try store.createTable("a", vecSize: 4, members: 2, expectedKeys: 99)
        #expect(first === again)
        #expect(throws: StoreError.layoutMismatch(table: "a", vecSize: 4, members: 2, requestedVecSize: 8, requestedMembers: 2)) {
            try store.createTable("a", vecSize: 8, members: 2, expectedKeys: 10)
        }
        _ = try store.createTable("b", vecSize: 1, members: 1, expectedKeys: 0)
        #expect(store.tableTags == ["a", "b"])
        #expect(store.table("a") === first)
        #expect(store.table("c") == nil)
    }

    @Test("inserts with a wrong member or wrong vector count are refused")
    func badInserts() throws {
        let store = HashMapStore(partitions: 2)
        let table = try store.createTable("bad", vecSize: 2, members: 2, expectedKeys: 10)
        #expect(throws: StoreError.noSuchMember(table: "bad", member: 2, members: 2)) {
            try insert(table, member: 2, keys: [1], vectors: [1, 2])
        }
        #expect(throws: StoreError.vectorCount(table: "bad", keys: 2, vecSize: 2, floats: 3)) {
            try insert(table, keys: [1, 2], vectors: [1, 2, 3])
        }
        #expect(table.count == 0)
    }

    @Test("a parallel lookup of more than 40,000 keys matches a single-threaded one")
    func parallelLookupMatchesSerial() throws {
        let store = HashMapStore(partitions: 4)
        let table = try store.createTable("par", vecSize: 3, members: 1, expectedKeys: 30_000)
        let source = RandomTable(count: 30_000, vecSize: 3, seed: 500, keyRange: 0...99_999)
        try insert(table, keys: source.keys, vectors: source.vectors, parallelism: 2)
        var random = SplitMix64(seed: 501)
        let probe = (0..<50_000).map { _ in Int64(random.next() % 100_000) }
        #expect(probe.count > 2 * HashMapTable.lockChunk)

        let serial = lookup(table, keys: probe, defaults: [0.5], parallelism: 1)
        let parallel = lookup(table, keys: probe, defaults: [0.5], parallelism: 2)
        let reference = source.reference
        #expect(bitwiseEqual(serial.vectors, expectedRows(probe, in: reference, vecSize: 3, defaultValue: 0.5)))
        #expect(bitwiseEqual(parallel.vectors, serial.vectors))
        #expect(parallel.missed == serial.missed)
        #expect(serial.missed == probe.indices.filter { reference[probe[$0]] == nil })
    }

    @Test("a lookup with an output large enough for streaming stores writes every element as the plain path does",
          arguments: [(128, 0), (128, 4), (128, 1), (20, 4)])
    func streamingLookupMatchesReference(vecSize: Int, outputOffset: Int) throws {
        let store = HashMapStore(partitions: 2)
        let table = try store.createTable("stream", vecSize: vecSize, members: 1, expectedKeys: 20_000)
        let source = RandomTable(count: 20_000, vecSize: vecSize, seed: 700, keyRange: 0...24_999)
        try insert(table, keys: source.keys, vectors: source.vectors, parallelism: 2)
        var random = SplitMix64(seed: 701)
        let count = HashMapTable.streamingBytes / (vecSize * 4) + 1000
        let probe = (0..<count).map { _ in Int64(random.next() % 25_000) }
        // A buffer aligned to 64 bytes, used from `outputOffset` floats on: whole
        // lines, rows that start inside a line, and an output that is not 16-byte aligned.
        let floats = count * vecSize
        let raw = UnsafeMutableRawPointer.allocate(byteCount: (floats + outputOffset) * 4, alignment: 64)
        defer { raw.deallocate() }
        let output = raw.bindMemory(to: Float.self, capacity: floats + outputOffset) + outputOffset
        output.initialize(repeating: .nan, count: floats)
        var missed = [Int](repeating: -1, count: count)
        let misses = probe.withUnsafeBufferPointer { k in
            missed.withUnsafeMutableBufferPointer { m in
                [Float(-3)].withUnsafeBufferPointer { d in
                    [LookupRun(member: 0, keys: k.baseAddress!, count: count, output: output)].withUnsafeBufferPointer {
                        table.lookup($0, defaults: d, missed: m.baseAddress, parallelism: 1)
                    }
                }
            }
        }
        let streamed = Array(UnsafeBufferPointer(start: output, count: floats))
        let reference = source.reference
        #expect(bitwiseEqual(streamed, expectedRows(probe, in: reference, vecSize: vecSize, defaultValue: -3)))
        #expect(Array(missed[0..<misses]) == probe.indices.filter { reference[probe[$0]] == nil })
        // The plain path (an output under the threshold) agrees row by row.
        let head = Array(probe[0..<1000])
        #expect(bitwiseEqual(lookup(table, keys: head, defaults: [-3]).vectors, Array(streamed[0..<(1000 * vecSize)])))
    }

    @Test("a parallel lookup over many runs reports misses like a serial one")
    func parallelLookupManyRuns() throws {
        let store = HashMapStore(partitions: 3)
        let table = try store.createTable("runs", vecSize: 2, members: 2, expectedKeys: 20_000)
        let m0 = RandomTable(count: 10_000, vecSize: 2, seed: 600, keyRange: 0...29_999)
        let m1 = RandomTable(count: 10_000, vecSize: 2, seed: 601, keyRange: 0...29_999)
        try insert(table, member: 0, keys: m0.keys, vectors: m0.vectors)
        try insert(table, member: 1, keys: m1.keys, vectors: m1.vectors)
        var random = SplitMix64(seed: 602)
        // 45 runs of 1,000 keys alternating members, plus an empty run: 45,000 keys.
        let runKeys = (0..<46).map { r in r == 20 ? [] : (0..<1000).map { _ in Int64(random.next() % 30_000) } }

        func run(_ parallelism: Int) -> ([Float], [Int]) {
            let total = runKeys.reduce(0) { $0 + $1.count }
            var out = [Float](repeating: .nan, count: total * 2)
            var missed = [Int](repeating: -1, count: total)
            let flat = runKeys.flatMap { $0 }
            let misses = flat.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { o in
                    var runs: [LookupRun] = [], offset = 0
                    for (r, keys) in runKeys.enumerated() {
                        runs.append(LookupRun(member: r % 2, keys: k.baseAddress! + offset, count: keys.count,
                                              output: o.baseAddress! + offset * 2))
                        offset += keys.count
                    }
                    return runs.withUnsafeBufferPointer { runs in
                        [Float(-1), Float(-2)].withUnsafeBufferPointer {
                            table.lookup(runs, defaults: $0, missed: &missed, parallelism: parallelism)
                        }
                    }
                }
            }
            return (out, Array(missed[0..<misses]))
        }
        let serial = run(1), parallel = run(2)
        var expected: [Float] = [], expectedMissed: [Int] = [], flatIndex = 0
        let references = [m0.reference, m1.reference]
        for (r, keys) in runKeys.enumerated() {
            for key in keys {
                if let v = references[r % 2][key] { expected += v } else {
                    expected += [Float](repeating: r % 2 == 0 ? -1 : -2, count: 2)
                    expectedMissed.append(flatIndex)
                }
                flatIndex += 1
            }
        }
        #expect(bitwiseEqual(serial.0, expected))
        #expect(serial.1 == expectedMissed)
        #expect(bitwiseEqual(parallel.0, expected))
        #expect(parallel.1 == expectedMissed)
    }

    @Test("a partition that cannot address more rows fails the insert with the table's tag")
    func partitionFull() throws {
        // 2^20 members leave 12 bits of row per ref: 4,094 rows per partition.
        let store = HashMapStore(partitions: 1)
        let table = try store.createTable("hps_et.m.full", vecSize: 1, members: 1 << 20, expectedKeys: 0)
        let keys = (0..<5000).map(Int64.init)
        #expect(throws: StoreError.partitionFull(table: "hps_et.m.full", rows: 4094)) {
            try insert(table, member: 3, keys: keys, vectors: keys.map(Float.init))
        }
        #expect(table.count == 4094)
        let (out, missed) = lookup(table, member: 3, keys: Array(keys[0..<4094]))
        #expect(missed.isEmpty)
        #expect(out == keys[0..<4094].map(Float.init))
    }
}
