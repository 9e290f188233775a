/// One version of a model as a `HierarchicalParameterServer` serves it: its
/// tables in the stores, its session on the CPU and its sessions on its
/// GPUs. A load of a model that is loaded already makes a new deployment
/// (a new generation, whose tables have their own tags) and puts it in the
/// old one's place; requests holding the old one finish on it.
public final class ModelDeployment: Sendable {
    /// The model's configuration.
    public let model: ModelConfiguration
    /// 0 for the first version loaded under this name, then 1, 2, …
    public let generation: Int
    /// The session on the CPU.
    public let session: LookupSession
    /// The sessions on GPUs, by device.
    public let deviceSessions: [Int: LookupSession]
    /// Each fusion group's table tag in the stores.
    public let tags: [String]
    /// Per fusion group, the index of the persistent store's table among the
    /// session's tiers, nil when there is none.
    public let persistentTiers: [Int?]
    /// Non-fatal findings of loading, one sentence each.
    public let warnings: [String]
    /// What loading read, per table.
    public let loadReports: [TableLoadReport]

    init(model: ModelConfiguration, generation: Int, session: LookupSession, deviceSessions: [Int: LookupSession],
         tags: [String], persistentTiers: [Int?], warnings: [String], loadReports: [TableLoadReport]) {
        self.model = model
        self.generation = generation
        self.session = session
        self.deviceSessions = deviceSessions
        self.tags = tags
        self.persistentTiers = persistentTiers
        self.warnings = warnings
        self.loadReports = loadReports
    }

    /// The sessions on GPUs, in device order.
    public var orderedDeviceSessions: [LookupSession] {
        deviceSessions.sorted { $0.key < $1.key }.map(\.value)
    }

    /// The background work of its sessions' caches (each cache's once: the
    /// GPU sessions of a sharded model share theirs).
    public var backgroundWork: [any BackgroundWork] {
        (0..<session.plan.groups.count).flatMap { caches(group: $0) }.flatMap(\.backgroundWork)
    }

    /// The distinct caches of fusion group `group` over the sessions, the
    /// CPU's first, then the GPUs' in device order (a sharded model's GPU
    /// sessions share one cache per group).
    package func caches(group: Int) -> [any EmbeddingCache] {
        var seen = Set<ObjectIdentifier>()
        return ([session] + orderedDeviceSessions).compactMap { $0.caches[group] }.filter {
            seen.insert(ObjectIdentifier($0)).inserted
        }
    }

    /// The store tag of a group's table: HugeCTR's `hps_et.<model>.<group>`
    /// for the first version, with `.v<generation>` after it for later ones
    /// (so that a new version loads beside the old one, which keeps serving).
    public static func tag(model: String, group: String, generation: Int) -> String {
        let base = FusionPlan.tag(model: model, group: group)
        return generation == 0 ? base : "\(base).v\(generation)"
    }
}
