import Logging

/// Logs each new kind of fault of the stores' tiers (`TierFaults`) once, as
/// an error naming the tier: the background work of `HierarchicalParameterServer`.
struct TierFaultLog: BackgroundWork {
    let stores: [any EmbeddingStore]
    let interval: Duration
    let logger: Logger?

    var name: String { "log of store tier faults" }

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

    func run(blocking: BlockingRunner) async throws {
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                Self.flush(stores, logger: logger)
                return  // cancelled: the server shuts down
            }
            Self.flush(stores, logger: logger)
        }
    }
}
