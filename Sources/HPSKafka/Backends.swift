import HPS

/// Registers the Kafka update source with `StoreBackends`, so that a
/// configuration with `update_source.type: kafka_message_queue` can be
/// served. Without the Kafka package trait this registers nothing, and such
/// a configuration is refused as not available in this build.
public func registerBackends() {
    #if Kafka
    StoreBackends.register(updateSource: .kafkaMessageQueue)
    #endif
}
