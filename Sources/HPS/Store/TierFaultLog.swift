import Logging

/// Logs each new kind of fault of the stores' tiers (`TierFaults`) once, as
/// an error naming the tier: the background work of `HierarchicalParameterServer`.
enum TierFaultLog {
    /// The log as background work: a flush every `interval`, and one when cancelled.
    static func work(stores: [any EmbeddingStore], interval: Duration, logger: Logger?) -> any BackgroundWork {
        PeriodicWork(name: "log of store tier faults", interval: interval,
                     onStop: { flush(stores, logger: logger) }) { flush(stores, logger: logger) }
    }

    /// Logs the sentences not logged yet; returns them.
    @discardableResult
    static func flush(_ stores: [any EmbeddingStore], logger: Logger?) -> [String] {
        var lines: [String] = []
        for store in stores {
            guard let faults = store.faults else { continue }
            for message in faults.takeUnreported() {
                let line = "\(store.kind) tier fault: \(message)"
                logger?.error("\(line)")
                lines.append(line)
            }
        }
        return lines
    }
}
