package import HPS

/// A GPU dynamic cache's inserts of the misses it answered with the default
/// value: waits until a lookup leaves some pending, reads them from the
/// tiers below and inserts them, until its task is cancelled.
///
/// Each step blocks its thread (device copies, and reads of the tiers below,
/// which may be Redis or RocksDB) while it holds the cache's lock, so it runs
/// through the owner's `BlockingRunner`, off the cooperative pool. A cache whose insert work does not run
/// still applies its pending inserts, at its next lookup.
package struct GPUCacheInsertWork: BackgroundWork {
    /// The cache.
    package let cache: GPUDynamicCache

    /// Inserts for `cache`.
    package init(cache: GPUDynamicCache) {
        self.cache = cache
    }

    /// `gpu inserts of <cache> on GPU <n>`.
    package var name: String { "gpu inserts of \(cache.name) on GPU \(cache.cuda.index)" }

    /// Applies pending inserts as lookups leave them, until cancelled; returns
    /// promptly on cancellation (an insert under way finishes first).
    package func run(blocking: BlockingRunner) async throws {
        // A stream of its own per run, so that a run after a cancelled one
        // (whose stream ended with it) is woken too; one wake-up is buffered.
        let (wakeUps, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = cache.registerInsertSignal(signal)
        defer {
            cache.unregisterInsertSignal(id)
            signal.finish()
        }
        for await _ in wakeUps {
            if Task.isCancelled { break }
            let cache = self.cache
            await blocking.run { cache.applyPendingInserts() }
        }
    }
}

/// A GPU dynamic cache's refresh (`refresh_interval` seconds apart, after
/// `refresh_delay`): re-reads every cached row from the tiers below, so that
/// updates to those tiers reach the GPU, until its task is cancelled.
///
/// A refresh blocks its thread (device copies of the whole cache's keys, and
/// reads of the tiers below) while it holds the cache's lock, so it runs
/// through the owner's `BlockingRunner`, off the cooperative pool. A failed refresh is counted in the cache's
/// `detailedStatistics` and the next one runs on time.
package struct GPUCacheRefreshWork: BackgroundWork {
    /// The cache.
    package let cache: GPUDynamicCache
    /// Seconds between refreshes.
    package let interval: Double
    /// Seconds before the first.
    package let delay: Double

    /// Refreshes of `cache`.
    package init(cache: GPUDynamicCache, interval: Double, delay: Double) {
        self.cache = cache
        self.interval = interval
        self.delay = delay
    }

    /// `gpu refresh of <cache> on GPU <n>`.
    package var name: String { "gpu refresh of \(cache.name) on GPU \(cache.cuda.index)" }

    /// Refreshes until cancelled; returns promptly on cancellation (a refresh
    /// under way finishes first).
    package func run(blocking: BlockingRunner) async throws {
        guard interval > 0 else { return }
        let cache = self.cache
        do {
            try await Task.sleep(for: .seconds(max(0, delay)))
            while true {
                await blocking.run { cache.refreshCountingErrors() }
                try await Task.sleep(for: .seconds(interval))
            }
        } catch is CancellationError {
            return
        }
    }
}
