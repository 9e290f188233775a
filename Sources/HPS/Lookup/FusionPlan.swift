/// How the tables of one model are grouped for lookup.
///
/// With fusion on, tables of one vec size form one group, named
/// `fused_embedding0`, `fused_embedding1`, … in ascending vec size, as HugeCTR
/// names them; a multi-table lookup then makes one store lookup per group.
/// With fusion off, every table is a group of its own, named after the table.
public struct FusionPlan: Sendable, Equatable {
    /// One group: tables that are looked up together.
    public struct Group: Sendable, Equatable {
        /// The group's table name in the stores (`fused_embedding0` or the table's name).
        public var name: String
        /// Floats per vector of every member.
        public var vecSize: Int
        /// The member tables, as indices into the model's table list, in model order.
        public var tables: [Int]
        /// The most keys one lookup of the whole group may carry: the sum of its members' limits.
        public var maxKeys: Int
    }

    /// The groups, in lookup order.
    public let groups: [Group]
    /// For each table of the model: its group.
    public let groupOfTable: [Int]
    /// For each table of the model: its member index within its group.
    public let memberOfTable: [Int]
    /// Whether tables were fused.
    public let fused: Bool

    /// Plans a model's lookups.
    /// - Parameter fuse: whether tables of one vec size are fused (the global
    ///   `fuse_embedding_table` and the model's own, both on).
    public init(model: ModelConfiguration, fuse: Bool) {
        let count = model.vecSizes.count
        var groups: [Group] = []
        var groupOfTable = [Int](repeating: 0, count: count)
        var memberOfTable = [Int](repeating: 0, count: count)
        if fuse {
            for (g, vecSize) in Set(model.vecSizes).sorted().enumerated() {
                let members = (0..<count).filter { model.vecSizes[$0] == vecSize }
                for (m, table) in members.enumerated() {
                    groupOfTable[table] = g
                    memberOfTable[table] = m
                }
                groups.append(Group(name: "fused_embedding\(g)", vecSize: vecSize, tables: members,
                                    maxKeys: members.reduce(0) { $0 + model.maxKeysPerLookup(table: $1) }))
            }
        } else {
            for table in 0..<count {
                groupOfTable[table] = table
                groups.append(Group(name: model.tableNames[table], vecSize: model.vecSizes[table], tables: [table],
                                    maxKeys: model.maxKeysPerLookup(table: table)))
            }
        }
        self.groups = groups
        self.groupOfTable = groupOfTable
        self.memberOfTable = memberOfTable
        self.fused = fuse
    }

    /// The store tag of a group: `hps_et.<model>.<group>`, as HugeCTR tags tables.
    public static func tag(model: String, group: String) -> String {
        "hps_et.\(model).\(group)"
    }
}
