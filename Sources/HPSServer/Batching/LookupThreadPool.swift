import HPS
import NIOPosix

/// The threads that run the lookups which may block: those of sessions
/// whose `mayBlock` is true (a Redis Cluster, RocksDB or memory-mapped tier,
/// a GPU), and CPU lookups too large to run in a request's task. They keep
/// such work off the event loops and Swift's cooperative pool; a request's
/// task awaits its lookup.
///
/// The server owns its pool: `LookupService` starts it with the server's
/// services and shuts it down after the listeners have answered the
/// requests in flight. A lookup submitted before the service has run starts
/// the pool; one submitted after the shutdown is not run.
///
/// Thread safety: `run` may be called concurrently, also with `shutdown`.
package final class LookupThreadPool: Sendable {
    /// The threads.
    package let threads: Int
    private let pool: NIOThreadPool
    private let state = Locked(State.idle)

    private enum State {
        case idle, running, stopped
    }

    /// A pool of `threads` threads, started at its first use.
    package init(threads: Int) {
        self.threads = max(1, threads)
        pool = NIOThreadPool(numberOfThreads: self.threads)
    }

    /// Starts the threads (once); false when the pool has been shut down.
    @discardableResult
    package func start() -> Bool {
        state.withLock { state in
            switch state {
            case .idle:
                pool.start()
                state = .running
                return true
            case .running: return true
            case .stopped: return false
            }
        }
    }

    /// Runs `body` on one of the pool's threads and returns its value.
    ///
    /// The work is not cancelled with the calling task: a lookup started for
    /// several merged requests finishes for all of them.
    /// - Returns: nil when the pool has been shut down and `body` did not run.
    package func run<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value? {
        guard start() else { return nil }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
            pool.submit { state in
                guard case .active = state else {
                    continuation.resume(returning: nil)
                    return
                }
                continuation.resume(returning: body())
            }
        }
    }

    /// Lets the work running finish, drops the work not yet started (its
    /// callers get nil), and stops the threads; later work is not run.
    package func shutdown() async {
        let wasRunning = state.withLock { state in
            defer { state = .stopped }
            if case .running = state { return true }
            return false
        }
        if wasRunning { try? await pool.shutdownGracefully() }
    }
}
