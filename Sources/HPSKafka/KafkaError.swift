/// Errors of the Kafka clients.
public enum KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// librdkafka refused a setting.
    case setting(key: String, value: String, reason: String)
    /// A client could not be made.
    case create(what: String, reason: String)
    /// An operation failed; `reason` is librdkafka's description of its error code.
    case operation(what: String, reason: String)
    /// Messages were not delivered to the brokers.
    case undelivered(messages: Int, reason: String)
    /// This build has no Kafka client (the Kafka package trait is off).
    case notBuilt

    /// One sentence naming what to fix.
    public var description: String {
        switch self {
        case let .setting(key, value, reason):
            return "Kafka setting \(key) = \(value) was refused: \(reason)"
        case let .create(what, reason):
            return "could not make the Kafka \(what): \(reason)"
        case let .operation(what, reason):
            return "Kafka \(what) failed: \(reason)"
        case let .undelivered(messages, reason):
            return "\(messages) Kafka message(s) were not delivered: \(reason); check that the brokers are reachable"
        case .notBuilt:
            return "this build has no Kafka client; build with --traits Kafka (needs Debian's librdkafka-dev)"
        }
    }
}

/// Whether this build has the Kafka clients (the Kafka package trait).
public var isKafkaBuilt: Bool {
    #if Kafka
    true
    #else
    false
    #endif
}
