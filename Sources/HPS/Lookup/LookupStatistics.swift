
/// Counters of a session's lookups since it started, in all and per table.
///
/// Thread safety: lookups record concurrently; `totals` may be read at any time.
public final class LookupStatistics: Sendable {
    private let state: Locked<LookupCounts>

    init(tables: Int, tiers: Int) { state = Locked(LookupCounts(tables: tables, tiers: tiers)) }

    func record(_ counts: LookupCounts) {
        state.withLock { $0.add(counts) }
    }

    /// The totals so far; `tables` holds one entry per table of the model.
    public var totals: LookupCounts { state.withLock { $0 } }
}
