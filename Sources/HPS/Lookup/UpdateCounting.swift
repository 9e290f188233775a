/// Background work that applies online updates (a Kafka consumer) and
/// counts them per topic, for the server's metrics.
public protocol UpdateCounting: Sendable {
    /// A name for the counts (the consumer's group).
    var countingName: String { get }
    /// Per topic: messages applied, keys applied, malformed messages skipped, since start.
    var updateCounts: [String: (messages: Int, keys: Int, malformed: Int)] { get }
}
