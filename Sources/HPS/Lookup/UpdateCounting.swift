/// Counts of the online updates a consumer applied and skipped, for one topic.
public struct UpdateCounts: Sendable, Equatable {
    /// Messages applied.
    public var messages = 0
    /// Keys applied.
    public var keys = 0
    /// Malformed messages skipped (their offsets advance with the rest).
    public var malformed = 0
    /// Keys applied that a GPU static table (or a uvm cache's table) of the
    /// model does not hold: served from the tiers below, not from the GPU.
    public var keysNotInGPUTables = 0
    /// The last reason a message of this topic was skipped.
    public var lastProblem: String?

    public init() {}
}

/// Background work that applies online updates (a Kafka consumer) and
/// counts them per topic, for the server's metrics.
public protocol UpdateCounting: Sendable {
    /// A name for the counts (the consumer's group).
    var countingName: String { get }
    /// The counts since start, per topic.
    var updateCounts: [String: UpdateCounts] { get }
}
