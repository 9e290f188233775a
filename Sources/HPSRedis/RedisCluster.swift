package import NIOCore
package import HPS
import NIOPosix
import Synchronization

/// A client of a Redis Cluster: the slot map read with `CLUSTER SLOTS`,
/// `num_node_connections` pipelining connections per node, `MOVED` and `ASK`
/// redirections, and reconnection with a back-off after failures.
///
/// `execute` is synchronous: it groups a batch of commands by node, writes each
/// node's share pipelined over its connections at once, and waits for all
/// replies. It blocks its caller with `EventLoopFuture.wait()`, so it must be
/// called from a thread that is not one of the event loops (the store calls it
/// from the caller's thread; `hps serve` runs such lookups on its thread
/// pool). The event loops are the caller's (`MultiThreadedEventLoopGroup.singleton`
/// unless given): the cluster never shuts them down. Its connections close
/// with `close()`, when the value returned by `connectionWork` is cancelled,
/// or, without waiting, when the cluster is released.
///
/// Thread safety: `execute` and `refreshSlots` may be called concurrently.
package final class RedisCluster: Sendable {
    /// How the client connects and how long it waits.
    package struct Options: Sendable {
        /// Connections kept per node (`num_node_connections`).
        package var connectionsPerNode = 5
        /// The Redis user for AUTH (`user_name`).
        package var userName = "default"
        /// The password; AUTH is sent only when it is not empty (`password`).
        package var password = ""
        /// The longest a connect may take.
        package var connectTimeout = TimeAmount.milliseconds(1000)
        /// The longest one pipelined batch may wait for its replies.
        package var commandTimeout = TimeAmount.milliseconds(5000)
        /// How long a node that failed is skipped before it is tried again.
        package var backoff = TimeAmount.milliseconds(250)
        /// Redirections followed per command before giving up.
        package var maxRedirections = 5

        /// The defaults.
        package init() {}
    }

    /// One command and the slot of the key it touches.
    package struct Request: Sendable {
        /// The hash slot of the command's key.
        package var slot: Int
        /// The encoded command.
        package var command: RedisCommand

        /// Creates a request.
        package init(slot: Int, command: RedisCommand) {
            self.slot = slot
            self.command = command
        }
    }

    /// The addresses the cluster was opened with.
    package let seeds: [NodeAddress]
    let options: Options
    private let group: any EventLoopGroup

    private struct SlotMap {
        /// Index into `nodes` per slot, or -1.
        var owner = [Int16](repeating: -1, count: HashSlot.count)
        var nodes: [NodeAddress] = []
        var stale = false
        var refreshedAt = NIODeadline.distantPast

        mutating func index(of address: NodeAddress) -> Int16 {
            if let i = nodes.firstIndex(of: address) { return Int16(i) }
            nodes.append(address)
            return Int16(nodes.count - 1)
        }
    }

    private let map = Locked(SlotMap())
    private let pools = Locked<[NodeAddress: NodePool]>([:])
    private let failures = Atomic<Int>(0)
    private let redirections = Atomic<Int>(0)

    /// Opens the cluster: reads the slot map from the first of `seeds` that answers.
    /// - Parameter eventLoopGroup: the event loops the connections run on;
    ///   the cluster uses them and never shuts them down.
    /// - Throws: `RedisError.clusterUnreachable` naming every address tried, when none answers.
    package init(seeds: [NodeAddress], options: Options = Options(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.seeds = seeds
        self.options = options
        group = eventLoopGroup
        do {
            try refreshSlots()
        } catch {
            close()
            throw error
        }
    }

    deinit {
        // Closing is asynchronous on the event loops: nothing here waits.
        close()
    }

    /// Closes every connection; a later command opens them again.
    package func close() {
        for pool in pools.withLock({ Array($0.values) }) { pool.close() }
    }

    /// The cluster's connections as background work: while it runs, a slot
    /// map marked stale by a failure or a redirection is read again every
    /// `interval` even when no command comes (so the first lookup after a
    /// failover finds the new map); when it is cancelled, the connections close.
    package func connectionWork(interval: Duration = .seconds(1)) -> any BackgroundWork {
        RedisConnectionWork(cluster: self, interval: interval)
    }

    /// Requests that failed at the connection level (refused, closed, timed out,
    /// skipped during a back-off) since the cluster was opened.
    package var failureCount: Int { failures.load(ordering: .relaxed) }

    /// `MOVED` and `ASK` replies followed since the cluster was opened.
    package var redirectionCount: Int { redirections.load(ordering: .relaxed) }

    /// The nodes that serve at least one slot, as last read.
    package var masters: [NodeAddress] {
        map.withLock { map in
            Set(map.owner.filter { $0 >= 0 }).sorted().map { map.nodes[Int($0)] }
        }
    }

    /// The node serving `slot` in the current map.
    package func node(forSlot slot: Int) -> NodeAddress? {
        map.withLock { map in
            let i = map.owner[slot]
            return i < 0 ? nil : map.nodes[Int(i)]
        }
    }

    package func pool(_ address: NodeAddress) -> NodePool {
        pools.withLock { pools in
            if let pool = pools[address] { return pool }
            let pool = NodePool(address: address, options: options, group: group)
            pools[address] = pool
            return pool
        }
    }

    // MARK: Slot map

    /// Reads the slot map again from the first node that answers (known nodes
    /// first, then the seeds). Blocks the calling thread: not for an event loop
    /// or async code (use `refreshSlotsAsync`).
    /// - Throws: `RedisError.clusterUnreachable` when none answers.
    package func refreshSlots() throws(RedisError) {
        var reasons: [String] = []
        let candidates = slotMapCandidates()
        for address in candidates {
            do {
                let replies = try slotsRequest(address).wait()
                try applySlots(replies, from: address)
                return
            } catch {
                reasons.append("\(error)")
            }
        }
        throw unreachable(candidates, reasons)
    }

    /// `refreshSlots`, awaiting the replies instead of blocking a thread.
    package func refreshSlotsAsync() async throws(RedisError) {
        var reasons: [String] = []
        let candidates = slotMapCandidates()
        for address in candidates {
            do {
                let replies = try await slotsRequest(address).get()
                try applySlots(replies, from: address)
                return
            } catch {
                reasons.append("\(error)")
            }
        }
        throw unreachable(candidates, reasons)
    }

    /// Refreshes the map if a failure or redirection marked it stale, awaiting the replies.
    func refreshIfStaleAsync() async {
        let due = map.withLock { $0.stale && NIODeadline.now() - $0.refreshedAt > .milliseconds(100) }
        if due { try? await refreshSlotsAsync() }
    }

    /// The nodes to ask for the map: the known masters, then the seeds.
    private func slotMapCandidates() -> [NodeAddress] {
        var candidates = map.withLock { map in Set(map.owner.filter { $0 >= 0 }).sorted().map { map.nodes[Int($0)] } }
        for seed in seeds where !candidates.contains(seed) { candidates.append(seed) }
        return candidates
    }

    private func slotsRequest(_ address: NodeAddress) -> EventLoopFuture<[RESPValue]> {
        pool(address).connection().flatMap { $0.send([RedisCommand(["CLUSTER", "SLOTS"])]) }
    }

    private func applySlots(_ replies: [RESPValue], from address: NodeAddress) throws(RedisError) {
        let ranges = try Self.parseSlots(replies[0], from: address)
        map.withLock { map in
            map.owner = [Int16](repeating: -1, count: HashSlot.count)
            for (range, node) in ranges {
                let i = map.index(of: node)
                for slot in range { map.owner[slot] = i }
            }
            map.stale = false
            map.refreshedAt = .now()
        }
    }

    private func unreachable(_ candidates: [NodeAddress], _ reasons: [String]) -> RedisError {
        map.withLock { $0.refreshedAt = .now() }
        return .clusterUnreachable(addresses: candidates.map { $0.description }, reasons: reasons)
    }

    /// The ranges of a `CLUSTER SLOTS` reply and their masters.
    static func parseSlots(_ reply: RESPValue, from address: NodeAddress) throws(RedisError) -> [(ClosedRange<Int>, NodeAddress)] {
        if case let .error(message) = reply {
            throw .badSlotMap(address: address.description, reason: message)
        }
        guard let entries = reply.array else {
            throw .badSlotMap(address: address.description, reason: "not an array")
        }
        var result: [(ClosedRange<Int>, NodeAddress)] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3,
                  let first = fields[0].integer, let last = fields[1].integer,
                  first >= 0, last >= first, last < HashSlot.count,
                  let master = fields[2].array, master.count >= 2,
                  let port = master[1].integer else {
                throw .badSlotMap(address: address.description, reason: "an entry is not [start, end, [host, port, …]]")
            }
            // An empty or unknown host means "the host you asked".
            let host = master[0].string.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? address.host
            result.append((Int(first)...Int(last), NodeAddress(host: host, port: Int(port))))
        }
        return result
    }

    /// Marks the map for a refresh before the next batch.
    private func markStale() {
        map.withLock { $0.stale = true }
    }

    /// Refreshes a stale map, at most every 100 ms; failures keep the old map.
    private func refreshIfStale() {
        let due = map.withLock { $0.stale && NIODeadline.now() - $0.refreshedAt > .milliseconds(100) }
        if due { try? refreshSlots() }
    }

    // MARK: Batches

    /// Sends every request to the node that serves its slot, pipelined per
    /// node, and waits for all replies.
    ///
    /// - Returns: one result per request, in order. A Redis error reply other than a
    ///   redirection is a `.success(.error(…))`; a node that cannot be reached gives
    ///   `.failure` for its requests (and is skipped for the back-off period), while
    ///   the other nodes' requests are answered.
    package func execute(_ requests: [Request]) -> [Result<RESPValue, RedisError>] {
        var results = [Result<RESPValue, RedisError>?](repeating: nil, count: requests.count)
        // Requests still to send, with the node an ASK redirection named.
        var pending: [(index: Int, ask: NodeAddress?)] = requests.indices.map { ($0, nil) }
        var round = 0
        while !pending.isEmpty && round <= options.maxRedirections {
            round += 1
            refreshIfStale()
            // Group by node.
            var groups: [NodeAddress: [(index: Int, asking: Bool)]] = [:]
            map.withLock { map in
                for (index, ask) in pending {
                    if let ask {
                        groups[ask, default: []].append((index, true))
                    } else {
                        let owner = map.owner[requests[index].slot]
                        if owner < 0 {
                            results[index] = .failure(.slotUnassigned(slot: requests[index].slot))
                            map.stale = true
                        } else {
                            groups[map.nodes[Int(owner)], default: []].append((index, false))
                        }
                    }
                }
            }
            // Send every node's share over its connections at once.
            var sent: [(node: NodeAddress, members: ArraySlice<(index: Int, asking: Bool)>,
                        future: EventLoopFuture<[RESPValue]>)] = []
            for (node, members) in groups {
                let pool = self.pool(node)
                let parts = min(pool.size, members.count)
                let size = (members.count + parts - 1) / parts
                var start = 0
                while start < members.count {
                    let part = members[start..<min(members.count, start + size)]
                    var commands: [RedisCommand] = []
                    commands.reserveCapacity(part.count)
                    for (index, asking) in part {
                        if asking { commands.append(RedisCommand(["ASKING"])) }
                        commands.append(requests[index].command)
                    }
                    let batch = commands
                    sent.append((node, part, pool.connection().flatMap { $0.send(batch) }))
                    start += size
                }
            }
            pending = []
            var failedNodes = Set<NodeAddress>()
            for (node, members, future) in sent {
                let replies: [RESPValue]
                do {
                    replies = try future.wait()
                } catch {
                    let error = (error as? RedisError) ?? .connectionClosed(address: node.description)
                    for (index, _) in members { results[index] = .failure(error) }
                    failures.add(members.count, ordering: .relaxed)
                    if case .nodeBackingOff = error {} else { failedNodes.insert(node) }
                    continue
                }
                var r = 0
                for (index, asking) in members {
                    if asking { r += 1 }  // the +OK of ASKING
                    let reply = replies[r]
                    r += 1
                    if case let .error(message) = reply, let redirect = Self.redirection(message, from: node) {
                        if redirect != .retry { redirections.add(1, ordering: .relaxed) }
                        switch redirect {
                        case let .moved(slot, target):
                            map.withLock { map in
                                map.owner[slot] = map.index(of: target)
                                map.stale = true
                            }
                            pending.append((index, nil))
                        case let .ask(target):
                            pending.append((index, target))
                        case .retry:
                            pending.append((index, nil))
                        }
                    } else {
                        results[index] = .success(reply)
                    }
                }
            }
            for node in failedNodes {
                pool(node).failed()
            }
            if !failedNodes.isEmpty { markStale() }
        }
        for (index, _) in pending { results[index] = .failure(.tooManyRedirections(slot: requests[index].slot)) }
        return results.map { $0! }
    }

    enum Redirection: Equatable {
        case moved(slot: Int, to: NodeAddress)
        case ask(to: NodeAddress)
        case retry
    }

    /// Reads `MOVED 3999 127.0.0.1:6381`, `ASK 3999 :6381` (empty host: the
    /// sender's), `TRYAGAIN …`; nil for any other error.
    static func redirection(_ message: String, from node: NodeAddress) -> Redirection? {
        if message.hasPrefix("TRYAGAIN") { return .retry }
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]),
              slot >= 0 && slot < HashSlot.count else { return nil }
        let text = parts[2]
        let target: NodeAddress
        if text.hasPrefix(":"), let port = Int(text.dropFirst()) {
            target = NodeAddress(host: node.host, port: port)
        } else if let address = NodeAddress(text) {
            target = address
        } else {
            return nil
        }
        return parts[0] == "MOVED" ? .moved(slot: slot, to: target) : .ask(to: target)
    }
}
