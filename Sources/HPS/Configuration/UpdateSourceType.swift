/// Where online updates of embeddings come from (`update_source.type`).
public enum UpdateSourceType: String, Sendable, Equatable, CaseIterable {
    /// No online updates (HugeCTR's default).
    case null
    /// Apache Kafka topics named `hps_et.<model>.<table>`.
    case kafkaMessageQueue = "kafka_message_queue"
}
