/// Errors of a lookup request.
public enum LookupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No model of that name is deployed.
    case unknownModel(String, available: [String])
    /// The model has no such table.
    case unknownTable(model: String, table: String, available: [String])
    /// More keys than `max_batch_size × maxnum_catfeature_query_per_table_per_sample`.
    case tooManyKeys(model: String, table: String, keys: Int, maxBatchSize: Int, maxPerSample: Int)
    /// A key outside the 32-bit key range of a `supportlonglong: false` deployment.
    case keyOutOfRange(table: String, key: Int64)
    /// Ragged ids whose offsets do not describe them.
    case invalidOffsets(reason: String)
    /// More dense inputs or weights than the layer takes.
    case shape(reason: String)
    /// The model is not served from that GPU.
    case notOnDevice(model: String, device: Int, devices: [Int])
    /// A destination of the wrong size, or in memory the session cannot write.
    case destination(reason: String)
    /// The GPU failed during the lookup (the driver's error, one sentence).
    case device(reason: String)
    /// Keys in device memory the session cannot read: of another key type
    /// than the deployment's, on another GPU, or NULL.
    case deviceKeys(reason: String)

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .unknownModel(name, available):
            return "no model named \"\(name)\" is deployed; the models are \(available.joined(separator: ", "))"
        case let .unknownTable(model, table, available):
            return "model \(model) has no table \"\(table)\"; its tables are \(available.joined(separator: ", ")) (or their indices 0–\(available.count - 1))"
        case let .tooManyKeys(model, table, keys, maxBatchSize, maxPerSample):
            return "\(keys) keys for table \(table) of model \(model) exceed max_batch_size \(maxBatchSize) × maxnum_catfeature_query_per_table_per_sample \(maxPerSample) = \(maxBatchSize * maxPerSample)"
        case let .keyOutOfRange(table, key):
            return "key \(key) for table \(table) does not fit in 32 bits; this deployment has supportlonglong false"
        case let .invalidOffsets(reason):
            return "invalid ragged ids: \(reason)"
        case let .shape(reason):
            return reason
        case let .notOnDevice(model, device, devices):
            return devices.isEmpty
                ? "model \(model) is not served from any GPU (it needs gpucache true, and a server started with a GPU)"
                : "model \(model) is not served from GPU \(device); its deployed_device_list is \(devices)"
        case let .destination(reason):
            return reason
        case let .device(reason):
            return reason
        case let .deviceKeys(reason):
            return reason
        }
    }
}
