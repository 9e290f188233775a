import Dispatch
import Glibc
import HPS
public import NIOCore
import Synchronization

/// Dynamic batching of one model's lookups: a request that arrives while no
/// lookup of the model runs is looked up at once; requests that arrive while
/// one runs wait, and when it finishes they are merged (up to the model's
/// limits) into one lookup, whose output is split back to them.
///
/// So an idle server adds no latency (with `maxQueueDelay` zero), and a busy
/// one makes one store lookup per fusion group for many requests instead of
/// one each. With `enabled` off every request is looked up on its own, concurrently.
///
/// A small lookup that starts from idle (at most `inlineKeys` keys, tens of
/// microseconds) runs in the calling task, which saves two thread hops;
/// larger lookups and the merged lookups of queued requests run on
/// Dispatch's global pool, off the event loops and Swift's cooperative pool.
///
/// Thread safety: `lookup` may be called concurrently.
public final class LookupBatcher: Sendable {
    /// How requests are batched.
    public struct Options: Sendable {
        /// Whether concurrent requests are merged.
        public var enabled = true
        /// How long a lookup that starts from idle waits for more requests to
        /// merge with (zero: it starts at once).
        public var maxQueueDelay: Duration = .zero

        /// The most keys a lookup from idle may have to run in the calling
        /// task instead of on Dispatch's pool (0: never).
        public var inlineKeys = 4096

        /// Batching on, no added wait.
        public init() {}
    }

    /// The model looked up.
    public let model: ServedModel
    /// How requests are batched.
    public let options: Options
    private let metrics: ServerMetrics
    private let state = Mutex(State())

    private struct State: ~Copyable {
        var running = false
        var queue: [Pending] = []
    }

    /// One request waiting for its output.
    private struct Pending: Sendable {
        var batch: ServedModel.Batch
        var continuation: CheckedContinuation<Result<[Float], InferenceError>, Never>
    }

    /// A batcher for `model`, recording its lookups in `metrics`.
    public init(model: ServedModel, metrics: ServerMetrics, options: Options = Options()) {
        self.model = model
        self.metrics = metrics
        self.options = options
    }

    /// Looks up a checked batch, merged with concurrent requests when batching is on.
    /// - Returns: exactly the floats `model.lookup(batch)` returns for this batch alone.
    public func lookup(_ batch: ServedModel.Batch) async throws(InferenceError) -> [Float] {
        if claimInline(batch) {
            let result = timedLookup(batch)
            finishInline()
            return try result.get()
        }
        return try await queued(batch).get()
    }

    /// Looks up a checked batch as `lookup(_:)` does, and appends its floats,
    /// little-endian, to `buffer` (Triton's binary tensor data). A lookup that
    /// runs in the calling task writes them there directly
    /// (`ServedModel.lookup(_:appendingTo:)`); a merged one copies its part.
    /// - Throws: as `lookup(_:)`; `buffer` is then as it was.
    public func lookup(_ batch: ServedModel.Batch, appendingTo buffer: inout ByteBuffer) async throws(InferenceError) {
        if claimInline(batch) {
            let result = timed { () throws(InferenceError) -> LookupCounts in try model.lookup(batch, appendingTo: &buffer) }
            finishInline()
            try result.get()
            return
        }
        buffer.writeLittleEndianFloats(try await queued(batch).get())
    }

    /// Whether a lookup of `batch` runs now in the calling task: a small one
    /// with no added wait, when batching is off or no lookup of the model runs
    /// (which it then marks as running).
    private func claimInline(_ batch: ServedModel.Batch) -> Bool {
        guard batch.totalKeys <= options.inlineKeys && options.maxQueueDelay == .zero else { return false }
        return !options.enabled || state.withLock { state -> Bool in
            if state.running { return false }
            state.running = true
            return true
        }
    }

    /// After a lookup in the calling task: counts it, and drains the requests
    /// that queued meanwhile on Dispatch's pool.
    private func finishInline() {
        metrics.recordBatch(model: model.name, requests: 1)
        guard options.enabled else { return }
        let queued = state.withLock { state in
            let taken = take(from: &state.queue, after: [])
            if taken.isEmpty { state.running = false }
            return taken
        }
        if !queued.isEmpty { DispatchQueue.global().async { self.drain(queued) } }
    }

    /// Queues `batch` for a lookup on Dispatch's pool, merged with others when
    /// batching is on, and waits for its output.
    private func queued(_ batch: ServedModel.Batch) async -> Result<[Float], InferenceError> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<[Float], InferenceError>, Never>) in
            let pending = Pending(batch: batch, continuation: continuation)
            guard options.enabled else {
                DispatchQueue.global().async { self.run([pending]) }
                return
            }
            let startNow = state.withLock { state -> Bool in
                if state.running {
                    state.queue.append(pending)
                    return false
                }
                state.running = true
                return true
            }
            if startNow { DispatchQueue.global().async { self.drain(first: pending) } }
        }
    }

    /// Runs lookups until no request waits.
    private func drain(first: Pending) {
        var group = [first]
        if options.maxQueueDelay > .zero {
            let (seconds, attoseconds) = options.maxQueueDelay.components
            let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
            usleep(UInt32(clamping: microseconds))
            group += state.withLock { state in take(from: &state.queue, after: [first]) }
        }
        drain(group)
    }

    /// Runs `group`, then what queued meanwhile, until no request waits.
    private func drain(_ first: [Pending]) {
        var group = first
        while true {
            run(group)
            group = state.withLock { state in
                let taken = take(from: &state.queue, after: [])
                if taken.isEmpty { state.running = false }
                return taken
            }
            if group.isEmpty { return }
        }
    }

    /// The longest prefix of `queue` that fits into one lookup with `group`
    /// (at least one request when `group` is empty), removed from it.
    private func take(from queue: inout [Pending], after group: [Pending]) -> [Pending] {
        var limits = Limits(model: model)
        for pending in group { _ = limits.admit(pending.batch) }
        var count = 0
        while count < queue.count && (limits.admit(queue[count].batch) || (count == 0 && group.isEmpty)) { count += 1 }
        let taken = Array(queue[0..<count])
        queue.removeFirst(count)
        return taken
    }

    /// Looks up a group as one lookup and answers each request; if the merged
    /// lookup is refused, each request is looked up alone so that only the
    /// bad one gets the error.
    private func run(_ group: [Pending]) {
        if group.count == 1 {
            let result = timedLookup(group[0].batch)
            metrics.recordBatch(model: model.name, requests: 1)
            group[0].continuation.resume(returning: result)
            return
        }
        let merged = ServedModel.Batch(merging: group.map(\.batch))
        switch timedLookup(merged) {
        case let .success(output):
            metrics.recordBatch(model: model.name, requests: group.count)
            let parts = merged.split(output, into: group.map(\.batch),
                                     vecSizes: model.prediction == nil ? model.session.model.vecSizes : nil)
            for (pending, part) in zip(group, parts) {
                pending.continuation.resume(returning: .success(part))
            }
        case .failure:
            for pending in group {
                let result = timedLookup(pending.batch)
                metrics.recordBatch(model: model.name, requests: 1)
                pending.continuation.resume(returning: result)
            }
        }
    }

    private func timedLookup(_ batch: ServedModel.Batch) -> Result<[Float], InferenceError> {
        var vectors: [Float] = []
        return timed { () throws(InferenceError) -> LookupCounts in
            let (floats, counts) = try model.lookup(batch)
            vectors = floats
            return counts
        }.map { vectors }
    }

    /// Runs a lookup and records its duration and counts.
    private func timed(_ lookup: () throws(InferenceError) -> LookupCounts) -> Result<Void, InferenceError> {
        let start = ContinuousClock.now
        do throws(InferenceError) {
            let counts = try lookup()
            metrics.recordLookup(session: model.session, counts: counts, duration: ContinuousClock.now - start)
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    /// What one merged lookup may hold: per table at most the model's keys
    /// limit (HPS model) or at most max_batch_size samples (prediction model).
    private struct Limits {
        let maxKeys: [Int]
        let maxSamples: Int
        let prediction: Bool
        var keys: [Int]
        var samples = 0

        init(model: ServedModel) {
            let configuration = model.session.model
            maxKeys = (0..<configuration.tableNames.count).map { configuration.maxKeysPerLookup(table: $0) }
            maxSamples = configuration.maxBatchSize
            prediction = model.prediction != nil
            keys = [Int](repeating: 0, count: maxKeys.count)
        }

        /// Adds `batch` if the lookup stays within the limits.
        mutating func admit(_ batch: ServedModel.Batch) -> Bool {
            if prediction {
                guard samples + batch.samples <= maxSamples else { return false }
                samples += batch.samples
                return true
            }
            for (table, tableKeys) in batch.keysPerTable.enumerated() where keys[table] + tableKeys.count > maxKeys[table] {
                return false
            }
            for (table, tableKeys) in batch.keysPerTable.enumerated() { keys[table] += tableKeys.count }
            return true
        }
    }
}
