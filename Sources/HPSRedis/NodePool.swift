import HPS
package import NIOCore

/// The `num_node_connections` connections to one node, handed out round-robin,
/// opened lazily and reopened after a failure.
///
/// After a failure the node is skipped for `backoff`, so a dead node costs a
/// lookup one refused connect per back-off period, not one per call.
///
/// Thread safety: all methods may be called from any thread.
package final class NodePool: Sendable {
    let address: NodeAddress
    private let options: RedisCluster.Options
    private let group: any EventLoopGroup

    private enum Slot {
        case empty
        case connecting(EventLoopFuture<RedisConnection>)
        case ready(RedisConnection)
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var skipUntil = NIODeadline.distantPast
    }

    private let state: Locked<State>

    init(address: NodeAddress, options: RedisCluster.Options, group: any EventLoopGroup) {
        self.address = address
        self.options = options
        self.group = group
        state = Locked(State(slots: Array(repeating: .empty, count: max(1, options.connectionsPerNode))))
    }

    /// The number of connections kept.
    var size: Int { max(1, options.connectionsPerNode) }

    /// The next connection in turn, connecting it if needed.
    package func connection() -> EventLoopFuture<RedisConnection> {
        state.withLock { state in
            if NIODeadline.now() < state.skipUntil {
                return group.next().makeFailedFuture(RedisError.nodeBackingOff(address: address.description))
            }
            let i = state.next
            state.next = (i + 1) % state.slots.count
            switch state.slots[i] {
            case let .ready(connection) where connection.isActive:
                return connection.channel.eventLoop.makeSucceededFuture(connection)
            case let .connecting(future):
                return future
            default:
                let future = RedisConnection.connect(
                    host: address.host, port: address.port, group: group,
                    connectTimeout: options.connectTimeout, timeout: options.commandTimeout,
                    userName: options.userName, password: options.password)
                state.slots[i] = .connecting(future)
                future.whenComplete { [weak self] result in
                    guard let self else { return }
                    self.state.withLock { state in
                        guard case let .connecting(f) = state.slots[i], f == future else { return }
                        switch result {
                        case let .success(connection): state.slots[i] = .ready(connection)
                        case .failure: state.slots[i] = .empty
                        }
                    }
                }
                return future
            }
        }
    }

    /// Records a failure: the node is skipped for the back-off period and its
    /// connections are reopened when it is next used.
    func failed() {
        let connections: [RedisConnection] = state.withLock { state in
            state.skipUntil = NIODeadline.now() + options.backoff
            var open: [RedisConnection] = []
            for (i, slot) in state.slots.enumerated() {
                if case let .ready(connection) = slot { open.append(connection) }
                if case .connecting = slot { continue }
                state.slots[i] = .empty
            }
            return open
        }
        for connection in connections { connection.close() }
    }

    /// Closes every connection.
    func close() {
        let connections: [RedisConnection] = state.withLock { state in
            var open: [RedisConnection] = []
            for slot in state.slots { if case let .ready(connection) = slot { open.append(connection) } }
            state.slots = Array(repeating: .empty, count: state.slots.count)
            return open
        }
        for connection in connections { connection.close() }
    }
}
