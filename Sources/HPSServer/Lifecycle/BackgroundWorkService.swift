package import HPS
import ServiceLifecycle

/// One piece of the hierarchy's background work (a GPU cache's refresh or
/// inserts of its misses, a Redis Cluster's connections) as a service of the
/// server's `ServiceGroup`: it runs the work, and cancels it at the graceful
/// shutdown, which reaches it after the listeners and the lookups have stopped.
///
/// Work that ends before the shutdown leaves the service waiting for it, so
/// that the group does not take the ending for a reason to stop serving; work
/// that throws ends the group with its error.
package struct BackgroundWorkService: Service, CustomStringConvertible {
    /// The work run.
    package let work: any BackgroundWork
    /// Where the work's blocking steps run.
    package let blocking: BlockingRunner

    /// The service of `work`, whose blocking steps run on `pool` (on a
    /// thread of their own when no pool is given).
    package init(_ work: any BackgroundWork, pool: LookupThreadPool? = nil) {
        self.work = work
        blocking = pool.map { pool in BlockingRunner { step in _ = await pool.run(step) } } ?? .dedicatedThread
    }

    /// The work's name, for the group's logs.
    package var description: String { work.name }

    /// Runs the work until the graceful shutdown cancels it.
    package func run() async throws {
        let work = self.work, blocking = self.blocking
        do {
            try await cancelWhenGracefulShutdown { try await work.run(blocking: blocking) }
        } catch is CancellationError {
            return
        }
        // The work ended by itself: serving goes on until the shutdown.
        try? await gracefulShutdown()
    }
}
