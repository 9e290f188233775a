/// What a tier met while it served that its lookups could not show: a read
/// the backend failed (a corrupt RocksDB block), a model file shrunk or
/// rewritten under the mapped tier. Lookups answer such keys as misses, from
/// the tiers below; this counts the faults and keeps one sentence per kind,
/// for the owner to log once (`TierFaultLog`) and to export as a metric.
///
/// Thread safety: every method may be called concurrently.
package final class TierFaults: Sendable {
    /// Distinct sentences kept; later distinct ones are only counted.
    package static let keptMessages = 32

    private struct State {
        var count = 0
        var messages: [String] = []
        var reported = 0
    }

    private let state = Locked(State())

    /// An empty record.
    package init() {}

    /// Counts `count` faults described by `message` (one sentence naming the
    /// table and the file or call that failed); a sentence seen before is
    /// only counted.
    package func record(_ message: String, count: Int = 1) {
        state.withLock { state in
            state.count += count
            if state.messages.count < Self.keptMessages && !state.messages.contains(message) {
                state.messages.append(message)
            }
        }
    }

    /// Faults counted so far.
    package var count: Int { state.withLock { $0.count } }

    /// Every distinct sentence kept, in the order first seen.
    package var messages: [String] { state.withLock { $0.messages } }

    /// The sentences not handed out by an earlier call, in the order first seen.
    package func takeUnreported() -> [String] {
        state.withLock { state in
            defer { state.reported = state.messages.count }
            return Array(state.messages[state.reported...])
        }
    }
}
