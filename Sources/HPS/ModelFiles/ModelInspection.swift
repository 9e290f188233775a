/// A description of a configuration's tables or of one sparse model folder:
/// key counts, vec sizes, key ranges, repeated keys and keys shared between
/// tables (which HugeCTR's fusion would answer from the wrong table).
public struct ModelInspection: Sendable {
    /// One table's facts.
    public struct Table: Sendable, Equatable {
        /// Model name, or nil for a lone folder.
        public var model: String?
        /// Table name.
        public var name: String
        /// Folder path.
        public var path: String
        /// Rows in the files.
        public var rows: Int
        /// Distinct keys.
        public var distinctKeys: Int
        /// Floats per vector.
        public var vecSize: Int
        /// Smallest and largest key, nil for an empty table.
        public var keyRange: ClosedRange<Int64>?
        /// The fusion group the table belongs to (with the configuration's fusion setting).
        public var group: String?
    }

    /// Two tables of one model that share keys.
    public struct Overlap: Sendable, Equatable {
        /// The model.
        public var model: String?
        /// The tables' names.
        public var first: String, second: String
        /// How many keys both hold.
        public var sharedKeys: Int
        /// One of them.
        public var exampleKey: Int64
        /// Whether the two tables fall in one fusion group.
        public var sameGroup: Bool
    }

    /// The tables, in configuration order.
    public var tables: [Table] = []
    /// Shared keys between tables of one model.
    public var overlaps: [Overlap] = []
    /// What the inspected path was.
    public var kind: String

    /// Inspects a configuration file or a sparse model folder.
    public init(path: String) throws {
        if isDirectory(path) {
            kind = "sparse model folder"
            let folder = try SparseModelFolder(path: path, table: lastComponent(path), vecSize: nil)
            tables = [try Self.describe(folder, model: nil, group: nil).table]
            return
        }
        guard fileExists(path) else {
            throw ModelFileError.io(path: path, operation: "inspect", reason: "no such file or folder")
        }
        kind = "configuration"
        let configuration = try HPSConfiguration.load(path: path)
        for model in configuration.models {
            let plan = FusionPlan(model: model, fuse: configuration.fuseEmbeddingTable && model.fuseEmbeddingTable)
            var keySets: [[Int64]] = []
            for table in 0..<model.tableNames.count {
                let folder = try SparseModelFolder(
                    path: HierarchicalParameterServer.resolve(model.sparseFiles[table], base: configuration.baseDirectory),
                    table: model.tableNames[table], vecSize: model.vecSizes[table])
                let (description, keys) = try Self.describe(folder, model: model.name,
                                                            group: plan.groups[plan.groupOfTable[table]].name)
                tables.append(description)
                keySets.append(keys)
            }
            for a in 0..<keySets.count {
                for b in (a + 1)..<max(a + 1, keySets.count) {
                    let (shared, example) = Self.intersect(keySets[a], keySets[b])
                    if shared > 0, let example {
                        overlaps.append(Overlap(model: model.name, first: model.tableNames[a], second: model.tableNames[b],
                                                sharedKeys: shared, exampleKey: example,
                                                sameGroup: plan.groupOfTable[a] == plan.groupOfTable[b]))
                    }
                }
            }
        }
    }

    /// A table's facts and its sorted distinct keys.
    static func describe(_ folder: SparseModelFolder, model: String?, group: String?) throws -> (table: Table, keys: [Int64]) {
        var keys = try folder.readAll().keys
        keys.sort()
        var distinct = 0
        for i in keys.indices where i == 0 || keys[i] != keys[i - 1] {
            keys[distinct] = keys[i]
            distinct += 1
        }
        keys.removeLast(keys.count - distinct)
        let range = keys.isEmpty ? nil : keys[0]...keys[keys.count - 1]
        return (Table(model: model, name: folder.table, path: folder.path, rows: folder.keyCount, distinctKeys: distinct,
                      vecSize: folder.vecSize, keyRange: range, group: group), keys)
    }

    /// The number of keys in both sorted arrays, and the first of them.
    static func intersect(_ a: [Int64], _ b: [Int64]) -> (Int, Int64?) {
        var i = 0, j = 0, count = 0
        var example: Int64?
        while i < a.count && j < b.count {
            if a[i] < b[j] { i += 1 } else if a[i] > b[j] { j += 1 } else {
                if example == nil { example = a[i] }
                count += 1; i += 1; j += 1
            }
        }
        return (count, example)
    }

    /// The description as text, a line per table and per overlap.
    public func report() -> String {
        var out = "\(kind): \(tables.count) table(s)\n"
        for t in tables {
            let range = t.keyRange.map { "keys \($0.lowerBound)…\($0.upperBound)" } ?? "no keys"
            let model = t.model.map { "model \($0), " } ?? ""
            let group = t.group.map { ", lookup group \($0)" } ?? ""
            let repeats = t.rows - t.distinctKeys
            out += "  \(model)table \(t.name): \(t.rows) keys, vec size \(t.vecSize), \(range)\(repeats > 0 ? ", \(repeats) repeated key(s)" : "")\(group), \(t.path)\n"
        }
        if tables.count > 1 {
            if overlaps.isEmpty {
                out += "no keys are shared between tables\n"
            } else {
                for o in overlaps {
                    out += "  overlap: tables \(o.first) and \(o.second) of model \(o.model ?? "-") share \(o.sharedKeys) key(s), e.g. \(o.exampleKey)\(o.sameGroup ? " (fused together: swift-hps keeps them apart, HugeCTR would mix them up)" : "")\n"
                }
            }
        }
        return out
    }
}

/// The last component of a path.
func lastComponent(_ path: String) -> String {
    let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
    return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
}
