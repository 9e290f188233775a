/// A failure of the RocksDB tier, with the database path and RocksDB's own
/// message so that a user can act on it.
public enum RocksDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process (or another store in this process) holds the database's LOCK file.
    case locked(path: String, message: String)
    /// `read_only` is set and there is no database at the path.
    case missing(path: String)
    /// RocksDB found the database damaged (a garbled CURRENT or MANIFEST, a bad block).
    case corrupt(path: String, message: String)
    /// A table asked of a `read_only` database that does not hold it, or a change
    /// asked of a `read_only` database.
    case readOnly(path: String, table: String, operation: String)
    /// The disk holding the database is full: the call named by `operation`
    /// wrote nothing; what earlier calls wrote is kept.
    case noSpace(path: String, operation: String, message: String)
    /// Any other failed call, named by `operation`.
    case operation(path: String, operation: String, message: String)
    /// The package was built without the RocksDB trait.
    case notBuilt

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .locked(path, message):
            return "the RocksDB database at \(path) is locked by another process or store (RocksDB: \(message)); stop the other user or choose another persistent_db.path"
        case let .missing(path):
            return "there is no RocksDB database at \(path) and persistent_db.read_only is set, so none is created (RocksDB needs \(path)/CURRENT)"
        case let .corrupt(path, message):
            return "the RocksDB database at \(path) is corrupt (RocksDB: \(message)); restore it or remove the folder to reload the model files"
        case let .readOnly(path, table, operation):
            return "cannot \(operation) table \(table): the RocksDB database at \(path) is opened read_only"
        case let .noSpace(path, operation, message):
            return "RocksDB could not \(operation) at \(path) because its disk is full (RocksDB: \(message)); free space there or choose another persistent_db.path, then start again (the rows written before are kept)"
        case let .operation(path, operation, message):
            return "RocksDB failed to \(operation) at \(path): \(message)"
        case .notBuilt:
            return "this build has no RocksDB tier; build with the RocksDB package trait (swift build --traits RocksDB)"
        }
    }
}
