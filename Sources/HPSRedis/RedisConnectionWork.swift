import HPS

/// A Redis Cluster's connections as background work of `hps serve`: keeps
/// the slot map fresh while it runs (awaiting the replies, never blocking a
/// thread), and closes the connections when cancelled.
struct RedisConnectionWork: BackgroundWork {
    let cluster: RedisCluster
    let interval: Duration

    var name: String { "redis-cluster connections (\(cluster.seeds.map(\.description).joined(separator: ",")))" }

    func run(blocking: BlockingRunner) async throws {
        // Nothing here blocks: the refresh awaits its replies.
        defer { cluster.close() }
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // cancelled: the server shuts down
            }
            await cluster.refreshIfStaleAsync()
        }
    }
}
