#if Kafka
public import HPS
#else
import HPS
#endif

extension StoreBackend {
    /// The Kafka update source, for a configuration with
    /// `update_source.type: kafka_message_queue`: given to a
    /// `HierarchicalParameterServer`, it lets such a configuration be served
    /// (the consumers are `hps serve`'s, or the program's own). Only in a
    /// build with the Kafka package trait.
    #if Kafka
    public static let kafka = StoreBackend(updateSource: .kafkaMessageQueue)
    #endif
}
