import Glibc

/// A failure of the memory-mapped tier, naming the file involved.
public enum MappedError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file could not be opened, mapped, written or renamed.
    case io(path: String, operation: String, reason: String)
    /// A table's member folders disagree on the vector size.
    case vecSizeMismatch(table: String, path: String, vecSize: Int, expected: Int)
    /// A key of a folder does not fit the deployment's key type (`supportlonglong: false`).
    case keyOutOfRange(path: String, key: Int64, index: Int)
    /// The tier serves the model files as they are and takes no changes.
    case readOnly(table: String, operation: String)
    /// Tables of the mapped tier come only from model folders.
    case notAttached(table: String)

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .io(path, operation, reason):
            return "cannot \(operation) \(path): \(reason)"
        case let .vecSizeMismatch(table, path, vecSize, expected):
            return "table \(table): \(path) holds vectors of \(vecSize) floats, but the table's other members hold \(expected)"
        case let .keyOutOfRange(path, key, index):
            return "key \(key) at row \(index) of \(path) does not fit 32-bit keys (supportlonglong is false)"
        case let .readOnly(table, operation):
            return "cannot \(operation) table \(table): the mapped tier serves the model files read-only; change the files and restart (the index is rebuilt)"
        case let .notAttached(table):
            return "the mapped tier cannot create table \(table) empty; it serves tables only from their model folders"
        }
    }

    static func lastError() -> String { String(cString: strerror(errno)) }
}
