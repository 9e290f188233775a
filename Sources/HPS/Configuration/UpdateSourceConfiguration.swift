/// The `update_source` section: where online embedding updates come from.
public struct UpdateSourceConfiguration: Sendable, Equatable {
    /// The source (`type`); none by default.
    public var type: UpdateSourceType = .null
    /// Comma-separated Kafka brokers (`brokers`).
    public var brokers: String = "127.0.0.1:9092"
    /// How often topic metadata is refreshed, in milliseconds (`metadata_refresh_interval_ms`).
    public var metadataRefreshIntervalMs: Int = 30000
    /// The consumer's receive buffer in bytes (`receive_buffer_size`).
    public var receiveBufferSize: Int = 262_144
    /// How long one poll waits, in milliseconds (`poll_timeout_ms`).
    public var pollTimeoutMs: Int = 500
    /// The most updates applied in one batch (`max_batch_size`, at least 1).
    public var maxBatchSize: Int = 8192
    /// How long to wait after a failure before retrying, in milliseconds (`failure_backoff_ms`).
    public var failureBackoffMs: Int = 50
    /// The most batches between two offset commits (`max_commit_interval`, at least 1).
    public var maxCommitInterval: Int = 32

    /// The defaults: no online updates.
    public init() {}

    /// Reads the section.
    init(reading reader: inout ConfigurationReader) throws(ConfigurationError) {
        type = try reader.choice("type", default: type)
        brokers = try reader.string("brokers", default: brokers)
        metadataRefreshIntervalMs = try reader.int(
            "metadata_refresh_interval_ms", default: metadataRefreshIntervalMs, mustBe: "at least 0") { $0 >= 0 }
        receiveBufferSize = try reader.int("receive_buffer_size", default: receiveBufferSize, mustBe: "at least 1") { $0 >= 1 }
        pollTimeoutMs = try reader.int("poll_timeout_ms", default: pollTimeoutMs, mustBe: "at least 0") { $0 >= 0 }
        maxBatchSize = try reader.int("max_batch_size", default: maxBatchSize, mustBe: "at least 1") { $0 >= 1 }
        failureBackoffMs = try reader.int("failure_backoff_ms", default: failureBackoffMs, mustBe: "at least 0") { $0 >= 0 }
        maxCommitInterval = try reader.int("max_commit_interval", default: maxCommitInterval, mustBe: "at least 1") { $0 >= 1 }
    }

    /// Every key of the section.
    func jsonValue() -> JSONValue {
        .object(JSONObject([
            ("type", .string(type.rawValue)),
            ("brokers", .string(brokers)),
            ("metadata_refresh_interval_ms", .integer(Int64(metadataRefreshIntervalMs))),
            ("receive_buffer_size", .integer(Int64(receiveBufferSize))),
            ("poll_timeout_ms", .integer(Int64(pollTimeoutMs))),
            ("max_batch_size", .integer(Int64(maxBatchSize))),
            ("failure_backoff_ms", .integer(Int64(failureBackoffMs))),
            ("max_commit_interval", .integer(Int64(maxCommitInterval))),
        ]))
    }
}
