import HPS
import HPSServer
import HTTPTypes
import Testing

#if Serving
import GRPCCore
#endif

/// The batcher's queue: bounded, answered at shutdown, left by a cancelled request.
struct BatcherQueueTests {
    /// A batcher of the fixture's model whose first lookup from idle waits
    /// `delay`, so that the requests after it queue.
    private func batcher(_ fixture: ServerFixture, delay: Duration = .seconds(2), limit: Int = 1024)
        -> (LookupBatcher, LookupThreadPool) {
        var options = LookupBatcher.Options()
        options.maxQueueDelay = delay
        options.maxQueuedRequests = limit
        options.cpuLookups = 1  // one lookup at a time, as on a GPU, so that the others queue behind it
        let pool = LookupThreadPool(threads: 1)
        let model = ServedModel(session: fixture.session)
        return (LookupBatcher(model: model, metrics: ServerMetrics(sessions: [fixture.session]), pool: pool, options: options), pool)
    }

    private let batch = ServedModel.Batch(keysPerTable: [[1, 2], [150]])

    @Test("a request beyond the queue's limit is refused with 503 / UNAVAILABLE naming the limit; the queued ones are answered")
    func fullQueue() async throws {
        let fixture = try ServerFixture()
        let (batcher, pool) = batcher(fixture, limit: 2)
        let expected = try fixture.expected(batch.keysPerTable)
        let batch = self.batch
        let leader = Task { try await batcher.lookup(batch) }  // waits 2 s for others
        try await Task.sleep(for: .milliseconds(200))
        let queued = (0..<2).map { _ in Task { try await batcher.lookup(batch) } }
        try await Task.sleep(for: .milliseconds(200))
        let error = await #expect(throws: InferenceError.self) { try await batcher.lookup(batch) }
        #expect(error == .overloaded(model: fixture.model, limit: 2))
        #expect(error?.status == .serviceUnavailable)
        #expect(error?.description.contains("2 requests waiting") == true)
        #expect(error?.description.contains("--max-queued-requests") == true)
        #if Serving
        #expect(error?.rpcErrorCode == .unavailable)
        #endif
        #expect(try await leader.value == expected)
        for task in queued { #expect(try await task.value == expected) }
        await pool.shutdown()
    }

    @Test("shutdown answers the queued requests at once with an error saying the server is shutting down")
    func shutdownAnswersQueued() async throws {
        let fixture = try ServerFixture()
        let (batcher, pool) = batcher(fixture, delay: .seconds(8))
        let expected = try fixture.expected(batch.keysPerTable)
        let batch = self.batch
        let leaderDone = Locked(false)
        let leader = Task {
            defer { leaderDone.withLock { $0 = true } }
            return try await batcher.lookup(batch)
        }
        try await Task.sleep(for: .milliseconds(200))
        let queued = (0..<3).map { _ in Task { () throws(InferenceError) -> [Float] in try await batcher.lookup(batch) } }
        try await Task.sleep(for: .milliseconds(200))
        batcher.shutdown()
        for task in queued {
            let result = await task.result
            #expect(throws: InferenceError.shuttingDown(model: fixture.model)) { try result.get() }
        }
        // Ordered, not timed: the leader's lookup waits 8 s for others to merge with.
        #expect(!leaderDone.withLock { $0 }, "queued requests are answered without waiting for the leader")
        #expect(InferenceError.shuttingDown(model: fixture.model).status == .serviceUnavailable)
        #expect(InferenceError.shuttingDown(model: fixture.model).description.contains("shutting down"))
        // The request in flight is answered; later ones are refused.
        #expect(try await leader.value == expected)
        await #expect(throws: InferenceError.shuttingDown(model: fixture.model)) { try await batcher.lookup(batch) }
        await pool.shutdown()
    }

    @Test("a queued request whose task is cancelled leaves the queue at once; the others are answered")
    func cancelledWhileQueued() async throws {
        let fixture = try ServerFixture()
        // Long enough that the steps below finish inside it on a loaded machine
        // (2 s was not, once, under the whole suite on 2 cores).
        let (batcher, pool) = batcher(fixture, delay: .seconds(8))
        let expected = try fixture.expected(batch.keysPerTable)
        let batch = self.batch
        let leaderDone = Locked(false)
        let leader = Task {
            defer { leaderDone.withLock { $0 = true } }
            return try await batcher.lookup(batch)
        }
        try await Task.sleep(for: .milliseconds(200))
        let cancelled = Task { () throws(InferenceError) -> [Float] in try await batcher.lookup(batch) }
        let kept = Task { try await batcher.lookup(batch) }
        try await Task.sleep(for: .milliseconds(200))
        cancelled.cancel()
        let result = await cancelled.result
        // Ordered, not timed: the leader's lookup waits 8 s for others to merge with.
        #expect(!leaderDone.withLock { $0 }, "the cancelled request leaves before the leader's lookup ends")
        #expect(throws: InferenceError.shuttingDown(model: fixture.model)) { try result.get() }
        #expect(try await leader.value == expected)
        #expect(try await kept.value == expected)
        await pool.shutdown()
    }

    @Test("a lookup submitted after the pool has stopped is refused as the server shutting down")
    func poolStopped() async throws {
        let fixture = try ServerFixture()
        let pool = LookupThreadPool(threads: 1)
        let session = fixture.session(mayBlock: true)
        let batcher = LookupBatcher(model: ServedModel(session: session), metrics: ServerMetrics(sessions: [session]), pool: pool)
        #expect(try await batcher.lookup(batch) == fixture.expected(batch.keysPerTable))
        await pool.shutdown()
        await #expect(throws: InferenceError.shuttingDown(model: fixture.model)) { try await batcher.lookup(batch) }
        #expect(await pool.run { 1 } == nil)
    }
}
