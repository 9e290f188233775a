import Foundation
import HPSStoreTestSupport
import Synchronization
import Testing

@testable import HPS

struct ConcurrencyTests {
    /// Runs `readers` lookup loops next to one writer loop, each on a thread
    /// of its own (not a pool that the machine's core count could serialize),
    /// and returns when all have finished.
    private func race(readers: Int, reader: @escaping @Sendable (Int) -> Void, writer: @escaping @Sendable () -> Void) {
        let finished = DispatchSemaphore(value: 0)
        for i in 0...readers {
            let thread = Thread {
                if i == readers { writer() } else { reader(i) }
                finished.signal()
            }
            thread.start()
        }
        for _ in 0...readers { finished.wait() }
    }

    @Test("lookups of untouched keys return their exact vectors while another thread inserts and erases")
    func lookupsDuringWrites() throws {
        let store = HashMapStore(partitions: 4)
        let table = try store.createTable("hps_et.m.race", vecSize: 4, members: 1, expectedKeys: 0)
        // Stable keys are even, churned keys odd, so the writer never touches a stable key.
        let stable = RandomTable(keys: (0..<5000).map { Int64($0) * 2 }, vecSize: 4, seed: 1)
        try insert(table, keys: stable.keys, vectors: stable.vectors)
        let failures = Atomic<Int>(0)
        let lookups = Atomic<Int>(0)

        race(readers: 3, reader: { r in
            var random = SplitMix64(seed: 10 + UInt64(r))
            for _ in 0..<40 {
                let picks = (0..<500).map { _ in Int(random.next() % 5000) }
                let keys = picks.map { stable.keys[$0] }
                let (out, missed) = lookup(table, keys: keys, defaults: [.nan])
                var ok = missed.isEmpty
                for (j, row) in picks.enumerated() where ok {
                    for d in 0..<4 where out[j * 4 + d].bitPattern != stable.vectors[row * 4 + d].bitPattern { ok = false }
                }
                if !ok { failures.add(1, ordering: .relaxed) }
                lookups.add(1, ordering: .relaxed)
            }
        }, writer: {
            var random = SplitMix64(seed: 99)
            for round in 0..<30 {
                // Enough new keys each round to force rehashes and arena growth.
                let keys = (0..<2000).map { _ in Int64(random.next() % 200_000) * 2 + 1 }
                let vectors = (0..<8000).map { _ in random.nextFloat(-1, 1) }
                _ = try? insert(table, keys: keys, vectors: vectors, parallelism: round % 2 + 1)
                if round % 3 == 0 { erase(table, keys: Array(keys[0..<1000])) }
            }
        })
        #expect(lookups.load(ordering: .relaxed) == 120)
        #expect(failures.load(ordering: .relaxed) == 0)
        // The stable keys are all still there, unchanged.
        let (out, missed) = lookup(table, keys: stable.keys)
        #expect(missed.isEmpty)
        #expect(bitwiseEqual(out, stable.vectors))
    }

    @Test("parallel lookups of untouched keys stay exact while another member of a fused table changes")
    func parallelLookupsDuringFusedWrites() throws {
        let store = HashMapStore(partitions: 3)
        let table = try store.createTable("hps_et.m.fused", vecSize: 2, members: 2, expectedKeys: 40_000)
        let stable = RandomTable(count: 40_000, vecSize: 2, seed: 2, keyRange: 0...999_999)
        try insert(table, member: 0, keys: stable.keys, vectors: stable.vectors)
        let failures = Atomic<Int>(0)

        race(readers: 2, reader: { r in
            for _ in 0..<4 {
                // 40,000 keys through the parallel path (two lock chunks or more).
                let (out, missed) = lookup(table, member: 0, keys: stable.keys, parallelism: 2)
                if !missed.isEmpty || !bitwiseEqual(out, stable.vectors) { failures.add(1, ordering: .relaxed) }
            }
        }, writer: {
            // The same keys in member 1: a fused table must keep them apart.
            var random = SplitMix64(seed: 7)
            for _ in 0..<6 {
                let vectors = (0..<(20_000 * 2)).map { _ in random.nextFloat(5, 6) }
                let keys = Array(stable.keys[0..<20_000])
                _ = try? insert(table, member: 1, keys: keys, vectors: vectors)
                erase(table, member: 1, keys: Array(keys[0..<10_000]))
            }
        })
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    @Test("sessions answer the same from many tasks at once")
    func concurrentSessions() async throws {
        let directory = try TemporaryDirectory(prefix: "hps-concurrent")
        defer { directory.remove() }
        let tables = (0..<2).map { RandomTable(count: 2000, vecSize: 8, seed: 20 + UInt64($0), keyRange: 0...9999) }
        for (i, t) in tables.enumerated() { try t.write(to: joinPath(directory.path, "t\(i)")) }
        let server = try TestConfiguration.server(
            TestConfiguration.json(tables: (0..<2).map { TableSpec(name: "t\($0)", folder: "t\($0)", vecSize: 8) },
                                   fuse: true),
            in: directory.path)
        let session = try server.session(model: "m")
        let references = tables.map(\.reference)

        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var random = SplitMix64(seed: 30 + UInt64(task))
                    var bad = 0
                    for _ in 0..<20 {
                        let keys = (0..<2).map { _ in (0..<64).map { _ in Int64(random.next() % 10_000) } }
                        let out = try session.lookup(tables: [(0, keys[0]), (1, keys[1])])
                        for t in 0..<2 where !bitwiseEqual(out[t], expectedRows(keys[t], in: references[t], vecSize: 8)) {
                            bad += 1
                        }
                    }
                    return bad
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        #expect(session.statistics.totals.keys == 8 * 20 * 128)
    }
}
