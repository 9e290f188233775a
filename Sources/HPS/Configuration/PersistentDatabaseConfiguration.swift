/// The `persistent_db` section: the tier that holds the full model, shared by all models.
public struct PersistentDatabaseConfiguration: Sendable, Equatable {
    /// The backend (`type`); disabled by default.
    public var type: PersistentDatabaseType = .disabled
    /// The database folder (`path`, HugeCTR's default `/tmp/rocksdb`).
    public var path: String = "/tmp/rocksdb"
    /// Threads used for database access (`num_threads`, at least 1).
    public var numThreads: Int = 16
    /// Whether the database is opened read-only (`read_only`).
    public var readOnly: Bool = false
    /// The most keys read or written in one request (`max_batch_size`, at least 1).
    public var maxBatchSize: Int = 65536
    /// Regular expressions selecting the update topics this tier follows (`update_filters`).
    public var updateFilters: [String] = ["^hps_.+$"]

    /// The defaults: no persistent tier.
    public init() {}

    /// Reads the section.
    init(reading reader: inout ConfigurationReader) throws(ConfigurationError) {
        type = try reader.choice("type", default: type)
        path = try reader.string("path", default: path)
        numThreads = try reader.int("num_threads", default: numThreads, mustBe: "at least 1") { $0 >= 1 }
        readOnly = try reader.bool("read_only", default: readOnly)
        maxBatchSize = try reader.int("max_batch_size", default: maxBatchSize, mustBe: "at least 1") { $0 >= 1 }
        updateFilters = try reader.array("update_filters", ConfigurationReader.string) ?? updateFilters
    }

    /// Every key of the section.
    func jsonValue() -> JSONValue {
        .object(JSONObject([
            ("type", .string(type.rawValue)),
            ("path", .string(path)),
            ("num_threads", .integer(Int64(numThreads))),
            ("read_only", .bool(readOnly)),
            ("max_batch_size", .integer(Int64(maxBatchSize))),
            ("update_filters", .array(updateFilters.map(JSONValue.string))),
        ]))
    }
}
