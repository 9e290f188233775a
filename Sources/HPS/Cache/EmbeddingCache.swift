/// The L1 cache of one fusion group, in front of the group's tiers (the
/// volatile store, the persistent store, the defaults): a GPU static table,
/// GPU dynamic or uvm cache (`HPSCUDA`), or a bounded cache in CPU memory
/// (`CPUEmbeddingCache`).
///
/// A cache answers a whole group lookup: the keys it holds from itself, the
/// others from `below` (now, or with the default value now and from below
/// later, as its policy says), and writes every row of the output.
///
/// Thread safety: lookups may be called concurrently; a cache serializes
/// what must be.
package protocol EmbeddingCache: AnyObject, Sendable {
    /// A short name for statistics and metrics: `gpu_static`, `gpu_dynamic`, `gpu_uvm` or `cpu_cache`.
    var kind: String { get }
    /// The GPU it lives on, or nil for host memory.
    var device: Int? { get }
    /// Floats per vector.
    var vecSize: Int { get }
    /// Member tables.
    var memberCount: Int { get }

    /// Looks up one fusion group's keys.
    ///
    /// - Parameters:
    ///   - batch: the keys, one run per member table and request, and where they go.
    ///   - below: the group's tiers below the cache (nil: none; misses get the default).
    ///   - defaults: per member, the value of a key found nowhere.
    ///   - hits: receives, per tier (the cache first, then `below`'s tiers), the
    ///     keys each answered, and per member the keys answered with the default.
    /// - Throws: `LookupError.device` when the device fails, or when the
    ///   destination is device memory the cache cannot write.
    func lookup(_ batch: CacheBatch, below: TierChain?, defaults: UnsafeBufferPointer<Float>,
                hits: inout TierHits) throws(LookupError)

    /// Applies new vectors of one member's keys (an online update, applied
    /// to the tiers below first) to the rows the cache holds: each such row
    /// is replaced in place or dropped, before the call returns, so that a
    /// lookup after it answers the new vector. Keys the cache does not hold
    /// are left to the tiers below.
    ///
    /// - Parameters:
    ///   - member: the member table.
    ///   - keys: (n) keys; a key repeated takes its last row.
    ///   - vectors: (n × vecSize) floats, row i for `keys[i]`.
    /// - Throws: `LookupError.device` when the device fails (the update may
    ///   then have reached some rows; applying it again is harmless).
    func update(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>) throws(LookupError) -> CacheUpdate

    /// What the cache has done since it was made; a snapshot taken under its lock.
    var statistics: CacheStatistics { get }

    /// Work the cache does in the background (refreshes, inserts of misses
    /// answered with the default): its owner runs each until shutdown. A
    /// cache whose work does not run still answers correctly; it applies
    /// what is pending at its next lookup.
    var backgroundWork: [any BackgroundWork] { get }
}

extension EmbeddingCache {
    /// No background work.
    package var backgroundWork: [any BackgroundWork] { [] }
}

/// One fusion group's lookup as a cache receives it.
///
/// - `keys`: all runs' keys, run after run (each run's `keys` points into
///   it); empty when the keys are in device memory (`deviceKeys`).
/// - `runs`: per run, its member, key count and, for a host destination, its
///   output rows (and its host keys, unless `deviceKeys`).
/// - `device`: for a device destination, where the group's rows go, run
///   after run (`count × vecSize` floats); nil for host memory.
/// - `deviceKeys`: per run, its keys in the memory of the cache's GPU, to be
///   read after the work queued on `keysStream`; only caches on a GPU take them.
package struct CacheBatch: @unchecked Sendable {
    /// All keys, run after run (empty for keys in device memory).
    package var keys: UnsafeBufferPointer<Int64>
    /// The runs, in key order; with a host destination each run's `output` receives its rows.
    package var runs: UnsafeBufferPointer<LookupRun>
    /// The group's output in device memory, run after run; nil when the outputs are the runs' host rows.
    package var device: DevicePointer<Float>?
    /// How the rows are placed in a device destination.
    package var layout: OutputLayout
    /// Per run, its keys in device memory; nil when the keys are `keys`.
    package var deviceKeys: [DeviceKeys]?
    /// The caller's stream whose earlier work writes `deviceKeys`.
    package var keysStream: DeviceStream
    /// The keys of all runs.
    package let count: Int

    /// A batch of keys in host memory.
    package init(keys: UnsafeBufferPointer<Int64>, runs: UnsafeBufferPointer<LookupRun>, device: DevicePointer<Float>? = nil,
                layout: OutputLayout = .runs) {
        self.keys = keys
        self.runs = runs
        self.device = device
        self.layout = layout
        deviceKeys = nil
        keysStream = .legacyDefault
        count = keys.count
    }

    /// A batch of keys in device memory: run r's keys are `deviceKeys[r]`
    /// (the runs' host key pointers are not read), written by the work queued
    /// on `stream` before the call.
    package init(deviceKeys: [DeviceKeys], after stream: DeviceStream, runs: UnsafeBufferPointer<LookupRun>,
                device: DevicePointer<Float>?, layout: OutputLayout = .runs) {
        precondition(deviceKeys.count == runs.count && zip(deviceKeys, runs).allSatisfy { $0.count == $1.count },
                     "one device key range per run, of the run's count")
        keys = UnsafeBufferPointer(start: nil, count: 0)
        self.runs = runs
        self.device = device
        self.layout = layout
        self.deviceKeys = deviceKeys
        keysStream = stream
        count = deviceKeys.reduce(0) { $0 + $1.count }
    }
}

/// What an L1 cache did with an online update.
package struct CacheUpdate: Sendable, Equatable {
    /// Rows the cache held for the update's keys, now replaced or dropped.
    package var rows = 0
    /// Keys of the update that a cache with a fixed set of keys (a GPU
    /// static table, or a uvm cache's table) does not hold: lookups of them
    /// are answered by the tiers below, which took the update.
    package var unheldKeys = 0

    /// Nothing done.
    package init(rows: Int = 0, unheldKeys: Int = 0) {
        self.rows = rows
        self.unheldKeys = unheldKeys
    }
}

/// What a cache has done.
package struct CacheStatistics: Sendable, Equatable {
    /// Keys looked up.
    package var keys = 0
    /// Keys the cache answered.
    package var hits = 0
    /// Keys inserted after a miss (or by a prefill).
    package var inserts = 0
    /// Rows evicted to make room.
    package var evictions = 0
    /// Refreshes of the cached rows from the tiers below.
    package var refreshes = 0
    /// Inserts that failed (the keys stay missing and are tried again).
    package var failedInserts = 0
    /// Nanoseconds spent on the device (GPU caches: kernels and copies of lookups).
    package var deviceNanoseconds: UInt64 = 0

    /// Zero counts.
    package init() {}

    /// hits / keys (0 before any key).
    package var hitRate: Double { keys == 0 ? 0 : Double(hits) / Double(keys) }
}

/// Work that runs in the background until it is cancelled, such as a
/// cache's refresh timer: its owner (`hps serve`'s service group) starts it,
/// and cancels the task to stop it. `run` returns once it has stopped and
/// left nothing half done.
public protocol BackgroundWork: Sendable {
    /// A name for logs.
    var name: String { get }
    /// Runs until the task is cancelled.
    /// - Parameter blocking: where the work's blocking steps run (device
    ///   copies, reads of a network or disk tier): never on Swift's
    ///   cooperative pool, which the work's own loop runs on.
    func run(blocking: BlockingRunner) async throws
}

/// Runs a step that blocks its thread where blocking is allowed: `hps serve`
/// passes one over its lookup thread pool. A step the runner cannot run any
/// more (its pool has shut down) is skipped.
public struct BlockingRunner: Sendable {
    private let body: @Sendable (@escaping @Sendable () -> Void) async -> Void

    /// A runner that hands each step to `body`, which runs it on a thread that may block and returns when it has run.
    public init(_ body: @escaping @Sendable (@escaping @Sendable () -> Void) async -> Void) {
        self.body = body
    }

    /// Runs `step` and returns when it has run (or been skipped).
    public func run(_ step: @escaping @Sendable () -> Void) async {
        await body(step)
    }

    /// A runner on a thread of its own per step: for callers that have no
    /// pool, such as tools and tests.
    public static let dedicatedThread = BlockingRunner { step in
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            BlockingThread.start {
                step()
                done.resume()
            }
        }
    }
}
