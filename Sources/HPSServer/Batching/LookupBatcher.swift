import HPS
package import NIOCore

/// Dynamic batching of one model's lookups, on structured concurrency: every
/// lookup runs in the task of one of the requests it answers (or on the
/// server's thread pool, awaited by that task), never in a task or a queue of
/// its own.
///
/// A request that arrives while a replica of the model (one of its GPUs, or
/// its CPU session) has room for another lookup (a GPU runs one at a time,
/// the CPU session `cpuLookups` at once) leads a lookup there: after
/// `maxQueueDelay` (zero: at once) it takes the requests queued meanwhile
/// that fit into one lookup with its own, looks them up as one (one store
/// lookup per fusion group for all of them, each request's rows written
/// straight to its own part of one buffer) and answers each with its slice
/// of that buffer. Requests that arrive while every replica is busy queue, up
/// to `maxQueuedRequests` (more are refused: 503, gRPC UNAVAILABLE). When a
/// lookup ends, the first queued request is woken to lead the next lookup,
/// with the queued requests that fit beside it, on the same replica; so a
/// request's task runs at most one lookup, its own. An idle server adds no
/// latency (with `maxQueueDelay` zero), and a busy one makes one lookup for
/// many requests. With `enabled` off every request is looked up on its own,
/// concurrently, on the least busy replica (or the next in turn).
///
/// Where a lookup runs: in the leading request's task when the session keeps
/// all it needs in memory (`mayBlock` false) and the lookup has at most
/// `inlineKeys` keys (tens of microseconds of CPU work); otherwise (a Redis
/// Cluster, RocksDB or memory-mapped tier, a GPU, a large lookup) on the
/// server's `LookupThreadPool`, awaited.
///
/// A request whose task is cancelled while it waits in the queue, and every
/// request still queued when `shutdown()` is called, gets
/// `InferenceError.shuttingDown` instead of waiting; a lookup that runs is
/// not interrupted (it answers several requests).
///
/// Thread safety: `lookup` may be called concurrently, also with `shutdown`.
public final class LookupBatcher: Sendable {
    /// How requests are batched.
    public struct Options: Sendable {
        /// Whether concurrent requests are merged.
        public var enabled = true
        /// How long a lookup that starts from idle waits for more requests to
        /// merge with (zero: it starts at once).
        public var maxQueueDelay: Duration = .zero
        /// The most keys a lookup of an in-memory session may have to run in
        /// the calling task instead of on the server's thread pool (0: never).
        public var inlineKeys = 4096
        /// The most requests of one model that may wait for a lookup; more are
        /// refused with `InferenceError.overloaded` (HTTP 503, gRPC UNAVAILABLE).
        public var maxQueuedRequests = 1024
        /// How a model served from several GPUs spreads its lookups over them.
        public var spreading = Spreading.leastBusy
        /// How many lookups a model's CPU session runs at once (a GPU runs
        /// one at a time): the host's cores by default, so that an in-memory
        /// model uses them all before requests queue and merge.
        public var cpuLookups = System.coreCount

        /// Batching on, no added wait.
        public init() {}
    }

    /// How the lookups of a model with several replicas are spread over them.
    public enum Spreading: String, Sendable, CaseIterable {
        /// Each lookup to the replica with the fewest lookups running (ties: the next in turn).
        case leastBusy = "least-busy"
        /// Each lookup to the next replica in turn that is free (batching
        /// off: the next replica in turn, busy or not).
        case roundRobin = "round-robin"
    }

    /// The model looked up.
    package let model: ServedModel
    /// How requests are batched.
    package let options: Options
    private let metrics: ServerMetrics
    private let pool: LookupThreadPool
    private let state: Locked<State>

    private struct State: ~Copyable {
        /// Lookups running on each replica (with batching on, at most its `capacity`).
        var running: [Int]
        /// The most lookups each replica runs at once with batching on.
        let capacity: [Int]
        /// Requests waiting for a lookup, in arrival order.
        var queue: [Pending] = []
        /// The replica after the one last chosen.
        var nextReplica = 0
        var nextID: UInt64 = 0
        /// Set by `shutdown()`: no request is queued or led any more.
        var closed = false
    }

    /// One request waiting for its turn.
    private struct Pending: Sendable {
        var id: UInt64
        var batch: ServedModel.Batch
        /// When the request reached the batcher.
        var arrived: ContinuousClock.Instant
        var continuation: CheckedContinuation<Turn, Never>
    }

    /// What wakes a queued request.
    private enum Turn: Sendable {
        /// Its output (it was looked up with others), or why not.
        case answered(Result<ByteBuffer, InferenceError>)
        /// It leads the lookup of its batch with `others` on `replica`.
        case lead(others: [Pending], replica: Int)
    }

    /// How a request enters the batcher.
    private enum Admission {
        case lead(replica: Int)
        case queue(id: UInt64)
    }

    /// A batcher for `model`, recording its lookups in `metrics` and running
    /// the blocking ones on `pool`.
    package init(model: ServedModel, metrics: ServerMetrics, pool: LookupThreadPool, options: Options = Options()) {
        self.model = model
        self.metrics = metrics
        self.pool = pool
        self.options = options
        state = Locked(State(running: [Int](repeating: 0, count: model.sessions.count),
                             capacity: model.sessions.map { $0.device == nil ? max(1, options.cpuLookups) : 1 }))
    }

    /// Looks up a checked batch, merged with concurrent requests when batching is on.
    /// - Returns: exactly the floats `model.lookup(batch)` returns for this batch alone.
    /// - Throws: what the lookup refuses (`.lookup`), `.overloaded` when the
    ///   queue is full, `.shuttingDown` after `shutdown()` or when the task is
    ///   cancelled while the request waits.
    package func lookup(_ batch: ServedModel.Batch) async throws(InferenceError) -> [Float] {
        try await lookupBinary(batch).readableLittleEndianFloats()
    }

    /// Looks up a checked batch as `lookup(_:)` does, its floats
    /// little-endian (Triton's binary tensor data): a buffer the lookup wrote
    /// them into, or the slice of a merged lookup's buffer that holds this
    /// request's part, without a copy.
    /// - Throws: as `lookup(_:)`.
    package func lookupBinary(_ batch: ServedModel.Batch) async throws(InferenceError) -> ByteBuffer {
        var buffer = ByteBuffer()
        try await lookup(batch, appendingTo: &buffer)
        return buffer
    }

    /// Looks up a checked batch as `lookup(_:)` does, and appends its floats,
    /// little-endian, to `buffer` (Triton's binary tensor data). A lookup of
    /// this request alone writes them there directly
    /// (`ServedModel.lookup(_:appendingTo:replica:)`), on the thread pool too;
    /// a merged one copies its part there (an empty `buffer` becomes the
    /// part, a slice of the merged lookup's buffer, without a copy).
    /// - Throws: as `lookup(_:)`; `buffer` is then as it was.
    package func lookup(_ batch: ServedModel.Batch, appendingTo buffer: inout ByteBuffer) async throws(InferenceError) {
        var output = Output.buffer(buffer)
        buffer = ByteBuffer()  // so that the buffer's storage is unique where the lookup writes it
        defer {
            if case let .buffer(written) = output { buffer = written }
        }
        if let part = try await lookup(batch, output: &output) { output.append(part) }
    }

    /// Closes the batcher: every request still queued gets
    /// `InferenceError.shuttingDown`, and so does every later one; lookups
    /// running finish.
    package func shutdown() {
        let queued = state.withLock { state in
            state.closed = true
            defer { state.queue.removeAll() }
            return state.queue
        }
        for pending in queued { pending.continuation.resume(returning: .answered(.failure(.shuttingDown(model: model.name)))) }
    }

    // MARK: Turns

    /// Where a request's floats go: a response buffer, or none while the
    /// buffer is lent to a lookup.
    private enum Output {
        case none
        case buffer(ByteBuffer)

        /// Appends `part` (a merged lookup's slice) to the buffer; an empty
        /// buffer becomes the slice itself.
        mutating func append(_ part: ByteBuffer) {
            guard case var .buffer(buffer) = self else { return }
            self = .none  // the buffer's storage stays unique while it grows
            if buffer.readableBytes == 0 && buffer.capacity == 0 {
                buffer = part
            } else {
                buffer.writeImmutableBuffer(part)
            }
            self = .buffer(buffer)
        }

        /// The buffer, whose storage is then referenced only by the value returned.
        mutating func takeBuffer() -> ByteBuffer {
            guard case let .buffer(buffer) = self else { return ByteBuffer() }
            self = .none
            return buffer
        }
    }

    /// A response buffer lent to the thread pool: its storage moves there
    /// and back, so that the lookup writes it without a copy.
    private final class LentBuffer: Sendable {
        private let buffer: Locked<ByteBuffer>

        init(_ buffer: consuming ByteBuffer) { self.buffer = Locked(buffer) }

        func withBuffer(_ body: (inout ByteBuffer) -> Result<Void, InferenceError>) -> Result<Void, InferenceError> {
            buffer.withLock { body(&$0) }
        }

        /// The buffer, the lent one left empty.
        func take() -> ByteBuffer {
            buffer.withLock { buffer in
                var taken = ByteBuffer()
                swap(&taken, &buffer)
                return taken
            }
        }
    }

    /// The request's turn: it leads a lookup, or waits in the queue to be
    /// answered or to lead one. Returns nil when the floats were written to
    /// the output buffer, else the request's part of a merged lookup, for
    /// the caller to append.
    private func lookup(_ batch: ServedModel.Batch, output: inout Output) async throws(InferenceError) -> ByteBuffer? {
        let arrived = ContinuousClock.now
        guard options.enabled else {
            let replica = try state.withLock { (state) throws(InferenceError) -> Int in
                if state.closed { throw .shuttingDown(model: model.name) }
                return claimReplica(&state, idleOnly: false)!
            }
            let result = await lookUp(batch, arrived: arrived, others: [], replica: replica, output: &output)
            state.withLock { $0.running[replica] -= 1 }
            return try result.get()
        }
        let admission = try state.withLock { (state) throws(InferenceError) -> Admission in
            if state.closed { throw .shuttingDown(model: model.name) }
            if let replica = claimReplica(&state, idleOnly: true) { return .lead(replica: replica) }
            state.nextID &+= 1
            return .queue(id: state.nextID)
        }
        switch admission {
        case let .lead(replica):
            var others: [Pending] = []
            if options.maxQueueDelay > .zero {
                // Cancellation (the server stopping) only ends the wait early: the requests it gathers are answered.
                try? await Task.sleep(for: options.maxQueueDelay)
                others = state.withLock { state in take(from: &state.queue, after: batch) }
            }
            return try await lead(batch, arrived: arrived, others: others, replica: replica, output: &output)
        case let .queue(id):
            switch await queued(batch, id: id, arrived: arrived) {
            case let .answered(result):
                return try result.get()
            case let .lead(others, replica):
                return try await lead(batch, arrived: arrived, others: others, replica: replica, output: &output)
            }
        }
    }

    /// Waits in the queue for the request's turn.
    private func queued(_ batch: ServedModel.Batch, id: UInt64, arrived: ContinuousClock.Instant) async -> Turn {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
                let refusal = state.withLock { state -> Turn? in
                    if state.closed || Task.isCancelled { return .answered(.failure(.shuttingDown(model: model.name))) }
                    // A replica may have become idle since the admission.
                    if let replica = claimReplica(&state, idleOnly: true) { return .lead(others: [], replica: replica) }
                    guard state.queue.count < options.maxQueuedRequests else {
                        return .answered(.failure(.overloaded(model: model.name, limit: options.maxQueuedRequests)))
                    }
                    state.queue.append(Pending(id: id, batch: batch, arrived: arrived, continuation: continuation))
                    return nil
                }
                if let refusal { continuation.resume(returning: refusal) }
            }
        } onCancel: {
            let removed = state.withLock { state -> Pending? in
                guard let index = state.queue.firstIndex(where: { $0.id == id }) else { return nil }
                return state.queue.remove(at: index)
            }
            removed?.continuation.resume(returning: .answered(.failure(.shuttingDown(model: model.name))))
        }
    }

    /// Runs the lookup of `batch` with `others` on `replica`, answers the
    /// others, and hands the replica to the first request queued meanwhile
    /// (or marks it idle).
    private func lead(_ batch: ServedModel.Batch, arrived: ContinuousClock.Instant, others: [Pending], replica: Int,
                      output: inout Output) async throws(InferenceError) -> ByteBuffer? {
        let result = await lookUp(batch, arrived: arrived, others: others, replica: replica, output: &output)
        let next = state.withLock { state -> (first: Pending, others: [Pending])? in
            guard !state.queue.isEmpty else {
                state.running[replica] -= 1
                return nil
            }
            let first = state.queue.removeFirst()
            return (first, take(from: &state.queue, after: first.batch))
        }
        if let next { next.first.continuation.resume(returning: .lead(others: next.others, replica: replica)) }
        return try result.get()
    }

    /// A replica for a new lookup, counted as running one more: with
    /// `idleOnly`, one with room for another lookup (nil: none); else the
    /// least busy (or the next in turn).
    private func claimReplica(_ state: inout State, idleOnly: Bool) -> Int? {
        let count = state.running.count
        var chosen: Int? = nil
        for step in 0..<count {
            let replica = (state.nextReplica + step) % count
            if idleOnly && state.running[replica] >= state.capacity[replica] { continue }
            if !idleOnly && options.spreading == .roundRobin { chosen = replica; break }
            if chosen == nil || state.running[replica] < state.running[chosen!] { chosen = replica }
            if state.running[replica] == 0 { break }
        }
        guard let chosen else { return nil }
        state.running[chosen] += 1
        state.nextReplica = (chosen + 1) % count
        return chosen
    }

    /// The longest prefix of `queue` that fits into one lookup with `batch`, removed from it.
    private func take(from queue: inout [Pending], after batch: ServedModel.Batch) -> [Pending] {
        var limits = Limits(model: model)
        _ = limits.admit(batch)
        var count = 0
        while count < queue.count && limits.admit(queue[count].batch) { count += 1 }
        let taken = Array(queue[0..<count])
        queue.removeFirst(count)
        return taken
    }

    // MARK: Lookups

    /// Looks up `batch` and `others` as one lookup on `replica` (in this task,
    /// or on the pool), answers the others, and gives this request's result:
    /// a lookup of `batch` alone writes into the output buffer and gives
    /// nil; a merged one gives this request's slice. Records each request's
    /// wait before the lookup started and, for a lookup on the pool, the
    /// time its task took to run again after it.
    private func lookUp(_ batch: ServedModel.Batch, arrived: ContinuousClock.Instant, others: [Pending], replica: Int,
                        output: inout Output) async -> Result<ByteBuffer?, InferenceError> {
        let keys = others.reduce(batch.totalKeys) { $0 + $1.batch.totalKeys }
        let inline = !model.sessions[replica].mayBlock && keys <= options.inlineKeys
        if others.isEmpty {
            // Straight into the response buffer, whose storage moves to the lookup and back.
            let result: Result<Void, InferenceError>
            if inline {
                var buffer = output.takeBuffer()
                recordQueued(arrived, others)
                result = timedLookup([batch], replica: replica, appendingTo: &buffer)
                output = .buffer(buffer)
            } else {
                let lent = LentBuffer(output.takeBuffer())
                result = await runOnPool(arrived: arrived, others: others) { [self] in
                    lent.withBuffer { buffer in timedLookup([batch], replica: replica, appendingTo: &buffer) }
                } ?? .failure(.shuttingDown(model: model.name))
                output = .buffer(lent.take())
            }
            metrics.recordBatch(model: model.name, requests: 1)
            return result.map { nil }
        }
        let batches = [batch] + others.map(\.batch)
        let results: [Result<ByteBuffer, InferenceError>]
        if inline {
            recordQueued(arrived, others)
            results = process(batches, replica: replica)
        } else {
            results = await runOnPool(arrived: arrived, others: others) { [self] in process(batches, replica: replica) }
                ?? [Result](repeating: .failure(.shuttingDown(model: model.name)), count: batches.count)
        }
        for (pending, result) in zip(others, results.dropFirst()) { pending.continuation.resume(returning: .answered(result)) }
        return results[0].map { $0 }
    }

    /// Records, for the leading request (arrived at `arrived`) and `others`
    /// of a lookup starting now, how long each waited.
    private func recordQueued(_ arrived: ContinuousClock.Instant, _ others: [Pending]) {
        let now = ContinuousClock.now
        metrics.recordQueue(model: model.name, duration: now - arrived)
        for pending in others { metrics.recordQueue(model: model.name, duration: now - pending.arrived) }
    }

    /// Runs a lookup on the pool: records the requests' waits when it starts
    /// there, and the task's resumption after it ends.
    /// - Returns: nil when the pool has been shut down and `body` did not run.
    private func runOnPool<Value: Sendable>(arrived: ContinuousClock.Instant, others: [Pending],
                                            _ body: @escaping @Sendable () -> Value) async -> Value? {
        guard let (value, ended) = await pool.run({ [self] in
            recordQueued(arrived, others)
            return (body(), ContinuousClock.now)
        }) else { return nil }
        metrics.recordResume(model: model.name, duration: ContinuousClock.now - ended)
        return value
    }

    /// Looks up `batches` as one lookup on `replica` into one buffer, each
    /// batch's floats a slice of it; if the merged lookup is refused, each
    /// batch alone, so that only the bad request gets the error. Blocking work.
    private func process(_ batches: [ServedModel.Batch], replica: Int) -> [Result<ByteBuffer, InferenceError>] {
        var merged = ByteBuffer()
        if case .success = timedLookup(batches, replica: replica, appendingTo: &merged) {
            metrics.recordBatch(model: model.name, requests: batches.count)
            var offset = merged.readerIndex
            return batches.map { batch in
                let bytes = model.outputCount(batch) * 4
                defer { offset += bytes }
                return .success(merged.getSlice(at: offset, length: bytes)!)
            }
        }
        return batches.map { batch in
            defer { metrics.recordBatch(model: model.name, requests: 1) }
            var alone = ByteBuffer()
            return timedLookup([batch], replica: replica, appendingTo: &alone).map { alone }
        }
    }

    /// Runs a lookup on `replica`, appending its floats to `buffer`, and
    /// records its duration and counts.
    private func timedLookup(_ batches: [ServedModel.Batch], replica: Int,
                             appendingTo buffer: inout ByteBuffer) -> Result<Void, InferenceError> {
        let start = ContinuousClock.now
        do throws(InferenceError) {
            let counts = try model.lookup(batches, appendingTo: &buffer, replica: replica)
            metrics.recordLookup(session: model.sessions[replica], counts: counts, duration: ContinuousClock.now - start)
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
            for (table, count) in batch.tableKeyCounts.enumerated() where keys[table] + count > maxKeys[table] {
                return false
            }
            for (table, count) in batch.tableKeyCounts.enumerated() { keys[table] += count }
            return true
        }
    }
}
