import HPS
import HPSKafka
import Logging

/// The Kafka consumers `hps serve` runs for a configuration's `update_source`.
enum UpdateFollowing {
    /// The consumers of `server`'s configuration (none without an update
    /// source), each named on stderr with its topics' filters' warnings.
    static func consumers(of server: HierarchicalParameterServer, logger: Logger) throws -> [any BackgroundWork] {
        guard server.configuration.updateSource.type != .null else { return [] }
        #if Kafka
        let (work, warnings) = try UpdateConsumers.make(server: server, logger: logger)
        for warning in warnings { note("hps: warning: \(warning)") }
        for consumer in work {
            note("hps: following updates from Kafka at \(server.configuration.updateSource.brokers) as group \(consumer.consumer.group)")
        }
        return work
        #else
        // HierarchicalParameterServer refuses an update source this build cannot follow, so this is not reached.
        return []
        #endif
    }
}
