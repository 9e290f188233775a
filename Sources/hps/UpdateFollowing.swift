import HPS
import HPSKafka
import Logging

/// The Kafka consumers `hps serve` runs for a configuration's `update_source`.
enum UpdateFollowing {
    /// The consumers of `server`'s configuration (none without an update
    /// source), each named on stderr with its topics' filters' warnings.
    /// - Parameter settings: further librdkafka consumer settings (`--kafka-setting`).
    static func consumers(of server: HierarchicalParameterServer, logger: Logger,
                          settings: [(String, String)] = []) throws -> [any BackgroundWork] {
        guard server.configuration.updateSource.type != .null else { return [] }
        #if Kafka
        let (work, warnings) = try UpdateConsumers.make(server: server, logger: logger, settings: settings)
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
