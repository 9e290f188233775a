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
    /// A tier outside this module (Redis Cluster, RocksDB, the mapped files)
    /// failed or refused an operation on `table`: `operation` says what was
    /// being done (as in "inserting into t1"), nil when `cause`, the tier's
    /// own error, says it already.
    case backend(kind: String, table: String?, operation: String?, cause: any Error)
    /// An insert stored some keys but not `keys` others, because the part of
    /// the store that holds them (a Redis node) could not be reached; `counts`
    /// is what was stored. Retrying later may store them.
    case partlyUnavailable(kind: String, table: String, keys: Int, counts: InsertCounts, reason: String)
    /// A vector element the table's `vector_storage` cannot hold (NaN, an
    /// infinity, or beyond fp16's range); nothing of the insert was stored
    /// after the keys before it.
    case unrepresentable(table: String, key: Int64, element: Int, value: Float, storage: VectorStorage)
    /// A tier that cannot store vectors in the format a model asks for.
    case storageUnsupported(kind: String, table: String, storage: VectorStorage)
    /// A table a tier holds already (a RocksDB database written earlier) in another `vector_storage`.
    case storageMismatch(kind: String, table: String, stored: VectorStorage, requested: VectorStorage)

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
        case let .backend(_, _, operation, cause):
            return operation.map { "\($0) failed: \(cause)" } ?? "\(cause)"
        case let .partlyUnavailable(kind, table, keys, _, reason):
            return "inserting into \(table) left \(keys) key(s) out of \(kind) because \(reason); the others were stored"
        case let .unrepresentable(table, key, element, value, storage):
            let limit = storage == .fp16 ? "fp16 holds magnitudes up to 65504 and no NaN or infinity"
                : "a quantized row holds no NaN or infinity"
            return "key \(key) of \(table) has \(value) at element \(element), which vector_storage \(storage.rawValue) cannot store (\(limit)); fix the vector or set vector_storage to fp32"
        case let .storageMismatch(kind, table, stored, requested):
            return "\(kind) holds \(table) in vector_storage \(stored.rawValue), not \(requested.rawValue); set vector_storage to \(stored.rawValue) or drop the table (a new model version writes new tables)"
        case let .storageUnsupported(kind, table, storage):
            return "\(kind) stores float32 vectors only, so it cannot hold \(table) in vector_storage \(storage.rawValue); set vector_storage to fp32 or use a hash_map volatile_db"
        }
    }

    /// The table the error is about, where it names one.
    public var table: String? {
        switch self {
        case let .layoutMismatch(table, _, _, _, _), let .vectorCount(table, _, _, _), let .noSuchMember(table, _, _),
             let .partitionFull(table, _), let .partlyUnavailable(_, table, _, _, _), let .unrepresentable(table, _, _, _, _),
             let .storageUnsupported(_, table, _), let .storageMismatch(_, table, _, _):
            table
        case let .backend(_, table, _, _):
            table
        }
    }

    /// Equal when the same case names the same things; two backend errors
    /// when their kind, table, operation and cause's sentence are the same.
    public static func == (lhs: StoreError, rhs: StoreError) -> Bool {
        switch (lhs, rhs) {
        case let (.layoutMismatch(a0, a1, a2, a3, a4), .layoutMismatch(b0, b1, b2, b3, b4)):
            (a0, a1, a2, a3, a4) == (b0, b1, b2, b3, b4)
        case let (.vectorCount(a0, a1, a2, a3), .vectorCount(b0, b1, b2, b3)):
            (a0, a1, a2, a3) == (b0, b1, b2, b3)
        case let (.noSuchMember(a0, a1, a2), .noSuchMember(b0, b1, b2)):
            (a0, a1, a2) == (b0, b1, b2)
        case let (.partitionFull(a0, a1), .partitionFull(b0, b1)):
            (a0, a1) == (b0, b1)
        case let (.backend(a0, a1, a2, a3), .backend(b0, b1, b2, b3)):
            (a0, a1, a2) == (b0, b1, b2) && String(describing: a3) == String(describing: b3)
        case let (.partlyUnavailable(a0, a1, a2, a3, a4), .partlyUnavailable(b0, b1, b2, b3, b4)):
            (a0, a1, a2, a4) == (b0, b1, b2, b4) && a3 == b3
        case let (.unrepresentable(a0, a1, a2, a3, a4), .unrepresentable(b0, b1, b2, b3, b4)):
            (a0, a1, a2, a4) == (b0, b1, b2, b4) && a3.bitPattern == b3.bitPattern
        case let (.storageUnsupported(a0, a1, a2), .storageUnsupported(b0, b1, b2)):
            (a0, a1, a2) == (b0, b1, b2)
        case let (.storageMismatch(a0, a1, a2, a3), .storageMismatch(b0, b1, b2, b3)):
            (a0, a1, a2, a3) == (b0, b1, b2, b3)
        case (.layoutMismatch, _), (.vectorCount, _), (.noSuchMember, _), (.partitionFull, _), (.backend, _),
             (.partlyUnavailable, _), (.unrepresentable, _), (.storageUnsupported, _), (.storageMismatch, _):
            false
        }
    }
}
