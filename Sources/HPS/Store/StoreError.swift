/// Errors of a store tier.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A table was created again with another vector size or member count.
    case layoutMismatch(table: String, vecSize: Int, members: Int, requestedVecSize: Int, requestedMembers: Int)
    /// An insert gave a vector buffer of the wrong size.
    case vectorCount(table: String, keys: Int, vecSize: Int, floats: Int)
    /// A member index outside the table.
    case noSuchMember(table: String, member: Int, members: Int)
    /// A partition cannot address more rows.
    case partitionFull(table: String, rows: Int)
    /// The backend named in the configuration is not part of this build.
    case backendUnavailable(path: String, type: String, reason: String)
    /// A store outside this module (RocksDB, the mapped tier) failed or refused
    /// an operation; `message` is its own one-sentence description.
    case backend(kind: String, message: String)
    /// An insert stored some keys but not `keys` others, because the part of
    /// the store that holds them (a Redis node) could not be reached; `counts`
    /// is what was stored. Retrying later may store them.
    case partlyUnavailable(kind: String, table: String, keys: Int, counts: InsertCounts, reason: String)

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .layoutMismatch(table, vecSize, members, requestedVecSize, requestedMembers):
            return "table \(table) exists with vec size \(vecSize) and \(members) member(s), not vec size \(requestedVecSize) and \(requestedMembers) member(s)"
        case let .vectorCount(table, keys, vecSize, floats):
            return "insert into \(table) gave \(floats) floats for \(keys) keys of vec size \(vecSize); expected \(keys * vecSize)"
        case let .noSuchMember(table, member, members):
            return "table \(table) has \(members) member table(s); member \(member) does not exist"
        case let .partitionFull(table, rows):
            return "a partition of \(table) cannot hold more than \(rows) rows; raise volatile_db.num_partitions"
        case let .backendUnavailable(path, type, reason):
            return "\(path) \"\(type)\" is not available: \(reason)"
        case let .backend(_, message):
            return message
        case let .partlyUnavailable(kind, table, keys, _, reason):
            return "inserting into \(table) left \(keys) key(s) out of \(kind) because \(reason); the others were stored"
        }
    }
}
