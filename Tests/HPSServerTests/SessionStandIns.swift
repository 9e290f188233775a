import Glibc
import HPS
import HPSServer

/// A store table that answers from another and records the name of the
/// thread of each lookup, to tell where a session's lookups ran.
final class ThreadRecordingTable: EmbeddingStoreTable {
    let inner: any EmbeddingStoreTable
    private let names = Locked<[String]>([])

    init(_ inner: any EmbeddingStoreTable) { self.inner = inner }

    /// The names of the threads that looked up, in order.
    var threadNames: [String] { names.withLock { $0 } }

    var tag: String { inner.tag }
    var vecSize: Int { inner.vecSize }
    var memberCount: Int { inner.memberCount }
    var count: Int { inner.count }

    func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        names.withLock { $0.append(Self.currentThreadName()) }
        return inner.lookup(runs, defaults: defaults, missed: missed, parallelism: parallelism)
    }

    /// The calling thread's name, as the kernel keeps it (NIO's pool names its threads `TP-#<n>`).
    static func currentThreadName() -> String {
        guard let file = fopen("/proc/thread-self/comm", "r") else { return "?" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                parallelism: Int) throws(StoreError) -> InsertCounts {
        try inner.insert(member: member, keys: keys, vectors: vectors, parallelism: parallelism)
    }

    func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int { inner.erase(member: member, keys: keys) }
}

/// An L1 cache that says it lives on a GPU but answers host lookups from a
/// CPU cache: the server's view of a session on a GPU, on a machine without one.
final class DeviceCacheStandIn: EmbeddingCache {
    let inner: CPUEmbeddingCache
    let device: Int?
    var kind: String { "gpu_standin" }
    var vecSize: Int { inner.vecSize }
    var memberCount: Int { inner.memberCount }
    var statistics: CacheStatistics { inner.statistics }

    init(_ inner: CPUEmbeddingCache, device: Int) {
        self.inner = inner
        self.device = device
    }

    func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                hits: inout TierHits) throws(LookupError) {
        try inner.lookup(batch, below: below, defaults: defaults, hits: &hits)
    }

    func update(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>) -> CacheUpdate {
        inner.update(member: member, keys: keys, vectors: vectors)
    }
}

extension ServerFixture {
    /// Another session of the fixture's model over the same tiers: with
    /// `cache`, an L1 cache of 1,000 rows per group (on the CPU, or a stand-in
    /// for a GPU's on `device`); `wrap` may wrap each tier's table.
    func session(mayBlock: Bool = false, cache: Bool = false, device: Int? = nil,
                 wrap: (any EmbeddingStoreTable) -> any EmbeddingStoreTable = { $0 }) -> LookupSession {
        let base = session
        let tiers = base.plan.groups.indices.map { base.tierTables(group: $0).map(wrap) }
        var caches: [(any EmbeddingCache)?] = []
        if cache {
            caches = base.plan.groups.map { group in
                let cpu = CPUEmbeddingCache(tag: FusionPlan.tag(model: base.model.name, group: group.name), vecSize: group.vecSize,
                                            members: group.tables.count, capacity: 1000)
                return device.map { DeviceCacheStandIn(cpu, device: $0) } ?? cpu
            }
        }
        return LookupSession(model: base.model, plan: base.plan, keyType: base.keyType, tiers: tiers,
                             tierNames: base.tierNames.filter { !$0.hasPrefix("cpu_") }, parallelism: 1,
                             caches: caches, device: device, mayBlock: mayBlock)
    }
}
