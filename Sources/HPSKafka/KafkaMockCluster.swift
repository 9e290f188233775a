#if Kafka
import CRdKafka

/// librdkafka's mock cluster (`rdkafka_mock.h`): Kafka-protocol brokers in
/// this process on loopback TCP ports, which any Kafka client can reach at
/// `bootstrapServers`. For tests and demonstrations; not a broker to keep data in.
///
/// Thread safety: its methods may be called from any thread.
public final class KafkaMockCluster: @unchecked Sendable {
    // @unchecked Sendable: librdkafka's mock cluster API is thread-safe.
    private let handle: OpaquePointer
    private let cluster: OpaquePointer
    /// `host:port` of each broker, comma-separated.
    public let bootstrapServers: String
    /// The number of brokers (ids 1 to `brokers`).
    public let brokers: Int32

    /// Starts `brokers` brokers.
    public init(brokers: Int32 = 1) throws(KafkaError) {
        self.brokers = brokers
        let conf = try makeKafkaConf([("client.id", "hps-mock-cluster")])
        handle = try makeKafkaClient(RD_KAFKA_PRODUCER, conf: conf, what: "mock cluster's client")
        guard let cluster = rd_kafka_mock_cluster_new(handle, brokers) else {
            rd_kafka_destroy(handle)
            throw .create(what: "mock cluster", reason: "rd_kafka_mock_cluster_new failed")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(handle)
    }

    /// Creates a topic of `partitions` partitions.
    public func createTopic(_ name: String, partitions: Int32) throws(KafkaError) {
        let status = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
        guard status == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .operation(what: "creating topic \(name)", reason: kafkaReason(status))
        }
    }

    /// Takes broker `id` down (its connections close, it accepts none) or brings it back up.
    public func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        let status = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
        guard status == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw .operation(what: "setting broker \(id) \(up ? "up" : "down")", reason: kafkaReason(status))
        }
    }
}
#endif
