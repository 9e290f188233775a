package import Logging

/// The rows a store tier could not take while a model loaded (a Redis node
/// down: `StoreError.partlyUnavailable`), and the work that writes them once
/// it can.
///
/// Until then lookups of those keys miss in that tier and are answered from
/// the tiers below it (or the default value), as for any miss. Each attempt
/// re-reads the table's folder (its `initial_cache_rate` share, as the load
/// did) and inserts only the keys the tier does not hold
/// (`EmbeddingStoreTable.insertAbsent`), so a vector an online update wrote
/// since is kept. A table whose attempt stores everything is done; one whose
/// tier is still partly unreachable is tried again at the next interval.
///
/// Thread safety: all methods may be called concurrently; `attempt` blocks
/// (it reads files and waits on the store).
package final class StoreCatchUp: Sendable {
    /// One member table of one store table waiting to be written.
    struct Pending: @unchecked Sendable {
        let id: Int
        let table: any EmbeddingStoreTable
        let member: Int
        let folder: SparseModelFolder
        let rate: Double
        let keyType: KeyType
        let model: String
        let kind: String
        let keys: Int
    }

    private let pending = Locked<(next: Int, entries: [Pending])>((0, []))
    private let parallelism: Int

    /// A catch-up whose inserts use `parallelism` threads.
    package init(parallelism: Int) {
        self.parallelism = parallelism
    }

    /// Records a member table of `table` (a table of a store of kind `kind`)
    /// loaded from `folder` at `rate`, of which `keys` rows were left out.
    package func add(table: any EmbeddingStoreTable, member: Int, folder: SparseModelFolder, rate: Double,
                    keyType: KeyType, model: String, kind: String, keys: Int) {
        pending.withLock { state in
            state.entries.append(Pending(id: state.next, table: table, member: member, folder: folder, rate: rate,
                                         keyType: keyType, model: model, kind: kind, keys: keys))
            state.next += 1
        }
    }

    /// Forgets the tables of `tags` (a model unloaded or replaced).
    package func remove(tags: [String]) {
        let dropped = Set(tags)
        pending.withLock { $0.entries.removeAll { dropped.contains($0.table.tag) } }
    }

    /// The tags of the store tables still waiting, one per member table.
    package var waiting: [String] {
        pending.withLock { $0.entries.map(\.table.tag) }
    }

    /// Tries every waiting table once.
    /// - Returns: a sentence for each table that is now caught up.
    package func attempt() -> [String] {
        var done: [String] = []
        for entry in pending.withLock({ $0.entries }) {
            guard let stored = write(entry) else { continue }
            pending.withLock { state in state.entries.removeAll { $0.id == entry.id } }
            done.append("\(entry.kind) caught up on table \(entry.folder.table) of model \(entry.model): \(stored) key(s) left out at load are stored now")
        }
        return done
    }

    /// Inserts the entry's absent rows; nil if some could still not be stored.
    private func write(_ entry: Pending) -> Int? {
        let limit = Int((Double(entry.folder.keyCount) * entry.rate).rounded(.up))
        var seen = 0, stored = 0
        do {
            try entry.folder.read(keyType: entry.keyType) { (keys, vectors) throws(StoreError) in
                let n = min(keys.count, limit - seen)
                guard n > 0 else { return }
                stored += try entry.table.insertAbsent(
                    member: entry.member, keys: UnsafeBufferPointer(rebasing: keys[0..<n]),
                    vectors: UnsafeBufferPointer(rebasing: vectors[0..<(n * entry.folder.vecSize)]),
                    parallelism: parallelism).inserted
                seen += n
            }
        } catch {
            return nil
        }
        return stored
    }

    /// The catch-up as background work: an attempt every `interval` while
    /// tables wait, each on a thread that may block, logging each table caught up.
    package func work(interval: Duration = .seconds(1), logger: Logger? = nil) -> any BackgroundWork {
        PeriodicWork(name: "catch-up of store tiers left partly unloaded", interval: interval,
                     due: { [self] in !waiting.isEmpty }) { [self] in
            for message in attempt() { logger?.notice("\(message)") }
        }
    }
}
