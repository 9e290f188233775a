/// Why a configuration could not be read or is not acceptable.
///
/// Every case names the place in the document as a JSON path such as
/// `models[0].max_batch_size`, and `description` is one sentence that says what to change.
public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text is not JSON; `reason` says why, `line` and `column` (1-based) say where.
    case invalidJSON(reason: String, line: Int, column: Int)
    /// A required key is absent.
    case missingKey(path: String)
    /// A value has the wrong JSON type, for example a string where an integer belongs.
    /// `expected` reads like "an integer", `found` like "the string \"256\"".
    case wrongType(path: String, expected: String, found: String)
    /// A value has the right type but is not allowed. `expected` reads like "at least 1",
    /// `found` is the value as JSON text.
    case invalidValue(path: String, expected: String, found: String)
    /// A per-table list has a different length than the list it must match, for example
    /// `embedding_vecsize_per_table` against `sparse_files`.
    case countMismatch(path: String, count: Int, reference: String, referenceCount: Int)
    /// Two models have the same name; `path` points at the later one's `model` key.
    case duplicateModelName(name: String, path: String, firstPath: String)
    /// Two tables of one model have the same name; `path` points at the later entry.
    case duplicateTableName(name: String, path: String, firstPath: String)
    /// The configuration file could not be read; `reason` is the system's explanation.
    case unreadableFile(path: String, reason: String)
    /// The configuration names a tier or update source (`type`, at `path`) that
    /// no backend given to the server provides; `reason` says which backend to
    /// pass or what to write instead.
    case backendUnavailable(path: String, type: String, reason: String)

    /// One plain sentence, without a final period, describing the problem and where it is, for
    /// example `models[0].embedding_vecsize_per_table has 7 entries but sparse_files has 8`.
    public var description: String {
        switch self {
        case .invalidJSON(let reason, let line, let column):
            "the configuration is not valid JSON: \(reason) at line \(line), column \(column)"
        case .missingKey(let path):
            "\(path) is required but missing"
        case .wrongType(let path, let expected, let found):
            "\(Self.display(path)) must be \(expected) but is \(found)"
        case .invalidValue(let path, let expected, let found):
            "\(Self.display(path)) must be \(expected) but is \(found)"
        case .countMismatch(let path, let count, let reference, let referenceCount):
            "\(path) has \(Self.entries(count)) but \(reference) has \(referenceCount)"
        case .duplicateModelName(let name, let path, let firstPath):
            "\(path) is \"\(name)\", which \(firstPath) already uses; every model needs a unique name"
        case .duplicateTableName(let name, let path, let firstPath):
            "\(path) is \"\(name)\", which \(firstPath) already uses; every table of a model needs a unique name"
        case .unreadableFile(let path, let reason):
            "cannot read the configuration file \(path): \(reason)"
        case .backendUnavailable(let path, let type, let reason):
            "\(path) \"\(type)\" is not available: \(reason)"
        }
    }

    /// The JSON path of the setting at fault; nil when the problem is the
    /// whole document (not JSON, or a file that cannot be read).
    public var path: String? {
        switch self {
        case .invalidJSON, .unreadableFile: nil
        case .missingKey(let path), .wrongType(let path, _, _), .invalidValue(let path, _, _),
             .countMismatch(let path, _, _, _), .duplicateModelName(_, let path, _),
             .duplicateTableName(_, let path, _), .backendUnavailable(let path, _, _):
            path.isEmpty ? nil : path
        }
    }

    private static func display(_ path: String) -> String {
        path.isEmpty ? "the configuration" : path
    }

    static func entries(_ count: Int) -> String {
        count == 1 ? "1 entry" : "\(count) entries"
    }
}
