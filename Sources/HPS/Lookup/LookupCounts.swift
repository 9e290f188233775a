/// What one lookup found where: keys, keys answered by each tier and keys
/// answered with the default value, for the whole lookup and for each table.
public struct LookupCounts: Sendable, Equatable {
    /// Keys looked up.
    public var keys = 0
    /// Keys answered by each tier, top first.
    public var tierHits: [Int]
    /// Keys found in no tier, answered with the default value.
    public var defaults = 0
    /// The same counts for each table of the model, in model order (empty
    /// when the counts were not split per table). A fused lookup is split by
    /// each member table's keys.
    public var tables: [Table]

    /// The counts of one table.
    public struct Table: Sendable, Equatable {
        /// Keys of the table looked up.
        public var keys = 0
        /// Keys of the table answered by each tier, top first.
        public var tierHits: [Int]
        /// Keys of the table found in no tier.
        public var defaults = 0

        /// Creates one table's counts.
        public init(keys: Int = 0, tierHits: [Int], defaults: Int = 0) {
            self.keys = keys
            self.tierHits = tierHits
            self.defaults = defaults
        }

        /// The share of the table's keys that tier `tier` answered (0 before any key).
        public func hitRatio(tier: Int) -> Double {
            keys == 0 ? 0 : Double(tierHits[tier]) / Double(keys)
        }
    }

    /// Creates counts.
    public init(keys: Int = 0, tierHits: [Int], defaults: Int = 0, tables: [Table] = []) {
        self.keys = keys
        self.tierHits = tierHits
        self.defaults = defaults
        self.tables = tables
    }

    /// Zero counts for a model of `tables` tables over `tiers` tiers.
    public init(tables: Int, tiers: Int) {
        self.init(tierHits: [Int](repeating: 0, count: tiers),
                  tables: [Table](repeating: Table(tierHits: [Int](repeating: 0, count: tiers)), count: tables))
    }

    /// Adds another lookup's counts to these.
    public mutating func add(_ other: LookupCounts) {
        keys += other.keys
        defaults += other.defaults
        for i in other.tierHits.indices where i < tierHits.count { tierHits[i] += other.tierHits[i] }
        for (t, table) in other.tables.enumerated() where t < tables.count {
            tables[t].keys += table.keys
            tables[t].defaults += table.defaults
            for i in table.tierHits.indices where i < tables[t].tierHits.count { tables[t].tierHits[i] += table.tierHits[i] }
        }
    }
}
