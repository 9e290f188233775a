import ServiceLifecycle

/// The lookups' part of the server's lifecycle, as a service of its
/// `ServiceGroup`: it starts the thread pool the blocking lookups run on and,
/// at the graceful shutdown (which reaches it once the KServe listeners,
/// listed after it, have answered the requests in flight), answers any
/// request still queued in a batcher with an error saying the server is
/// shutting down, and stops the pool once the lookups running have finished.
package struct LookupService: Service {
    /// The pool started and stopped.
    package let pool: LookupThreadPool
    /// The models whose batchers' queues are closed at the shutdown (and
    /// the background work of those loaded while serving stopped).
    package let repository: ModelRepository

    /// The service of `pool` and the models of `repository`.
    package init(pool: LookupThreadPool, repository: ModelRepository) {
        self.pool = pool
        self.repository = repository
    }

    /// Runs until the group shuts down gracefully (or the task is cancelled).
    package func run() async {
        pool.start()
        try? await gracefulShutdown()
        repository.shutdown()
        await pool.shutdown()
    }
}
