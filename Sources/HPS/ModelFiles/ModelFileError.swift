/// Errors reading or writing HugeCTR sparse model folders.
public enum ModelFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A file of the folder does not exist.
    case missingFile(table: String, path: String)
    /// A file could not be opened, read or written.
    case io(path: String, operation: String, reason: String)
    /// The `key` file is not a whole number of int64 keys.
    case keyFileSize(path: String, bytes: Int)
    /// `emb_vector` does not hold keys × vec size floats.
    case vectorFileSize(table: String, path: String, bytes: Int, keys: Int, vecSize: Int)
    /// `emb_vector` holds whole vectors, but of another size than the configuration says.
    case vecSizeMismatch(table: String, path: String, configured: Int, found: Int)
    /// A key does not fit the configured 32-bit key type.
    case keyOutOfRange(path: String, key: Int64, index: Int)
    /// A vec size or key count that cannot describe a table.
    case invalidShape(table: String, reason: String)

    /// The table whose files are at fault, where the error knows it.
    public var table: String? {
        switch self {
        case let .missingFile(table, _), let .vectorFileSize(table, _, _, _, _), let .vecSizeMismatch(table, _, _, _),
             let .invalidShape(table, _):
            table
        case .io, .keyFileSize, .keyOutOfRange:
            nil
        }
    }

    /// The file at fault, where the error names one.
    public var path: String? {
        switch self {
        case let .missingFile(_, path), let .io(path, _, _), let .keyFileSize(path, _), let .vectorFileSize(_, path, _, _, _),
             let .vecSizeMismatch(_, path, _, _), let .keyOutOfRange(path, _, _):
            path
        case .invalidShape:
            nil
        }
    }

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .missingFile(table, path):
            return "table \(table): \(path) does not exist"
        case let .io(path, operation, reason):
            return "cannot \(operation) \(path): \(reason)"
        case let .keyFileSize(path, bytes):
            return "\(path) is \(bytes) bytes, which is not a whole number of 8-byte int64 keys"
        case let .vectorFileSize(table, path, bytes, keys, vecSize):
            return "table \(table): \(path) is \(bytes) bytes but \(keys) keys × vec size \(vecSize) × 4 bytes = \(keys * vecSize * 4) bytes"
        case let .vecSizeMismatch(table, path, configured, found):
            return "table \(table): \(path) holds vectors of \(found) floats but the configuration says embedding_vecsize_per_table = \(configured)"
        case let .keyOutOfRange(path, key, index):
            return "\(path): key \(key) at index \(index) does not fit in 32 bits; set supportlonglong to true to serve int64 keys"
        case let .invalidShape(table, reason):
            return "table \(table): \(reason)"
        }
    }
}
