/// Why a Redis request got no reply.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Connecting to a node failed.
    case connectFailed(address: String, reason: String)
    /// The connection closed with requests outstanding.
    case connectionClosed(address: String)
    /// No reply came within the timeout; the connection was closed.
    case timeout(address: String, milliseconds: Int)
    /// The node replied with bytes that are not RESP.
    case protocolError(address: String, reason: String)
    /// AUTH was refused.
    case authenticationFailed(address: String, reason: String)
    /// The node is skipped for a short back-off after a failure.
    case nodeBackingOff(address: String)
    /// No node serves the slot in the current slot map.
    case slotUnassigned(slot: Int)
    /// Redirections did not settle.
    case tooManyRedirections(slot: Int)
    /// No address of the configuration answered `CLUSTER SLOTS`.
    case clusterUnreachable(addresses: [String], reasons: [String])
    /// The cluster answered `CLUSTER SLOTS` with something unexpected.
    case badSlotMap(address: String, reason: String)
    /// A command got a reply of another kind than it returns (`reply` as text).
    case unexpectedReply(command: String, reply: String)

    /// Whether the error says a node could not be reached (it may answer
    /// later), as opposed to one that answered wrongly.
    public var isUnreachable: Bool {
        switch self {
        case .connectFailed, .connectionClosed, .timeout, .nodeBackingOff, .slotUnassigned, .clusterUnreachable: return true
        case .protocolError, .authenticationFailed, .tooManyRedirections, .badSlotMap, .unexpectedReply: return false
        }
    }

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .connectFailed(address, reason): return "cannot connect to Redis node \(address): \(reason)"
        case let .connectionClosed(address): return "the connection to Redis node \(address) closed"
        case let .timeout(address, ms): return "Redis node \(address) did not reply within \(ms) ms"
        case let .protocolError(address, reason): return "Redis node \(address) sent a malformed reply: \(reason)"
        case let .authenticationFailed(address, reason): return "Redis node \(address) refused AUTH: \(reason); check volatile_db.user_name and password"
        case let .nodeBackingOff(address): return "Redis node \(address) failed recently and is skipped for a moment"
        case let .slotUnassigned(slot): return "no Redis node serves hash slot \(slot)"
        case let .tooManyRedirections(slot): return "requests for hash slot \(slot) were redirected too often"
        case let .clusterUnreachable(addresses, reasons):
            return "no Redis Cluster node answered at \(addresses.joined(separator: ", ")) (volatile_db.address): "
                + reasons.joined(separator: "; ")
        case let .badSlotMap(address, reason): return "Redis node \(address) gave an unusable CLUSTER SLOTS reply: \(reason)"
        case let .unexpectedReply(command, reply): return "Redis answered \(command) with \(reply)"
        }
    }
}
