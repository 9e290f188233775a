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
        /// Elements of the files that are NaN or infinite.
        public var nonFiniteElements = 0
        /// Per storage asked about, the error of its rows against the files.
        public var storageErrors: [StorageError] = []
    }

    /// How far a table's vectors move when stored in a `VectorStorage`:
    /// every row encoded and decoded, against the float32 files.
    public struct StorageError: Sendable, Equatable {
        /// The storage.
        public var storage: VectorStorage
        /// Largest and mean |stored − file| over all elements.
        public var maxAbsolute: Double, meanAbsolute: Double
        /// Largest and mean |stored − file| / |file| over the nonzero elements.
        public var maxRelative: Double, meanRelative: Double
        /// Largest |stored − file| / the row's largest |file|: the error at the row's scale
        /// (an element near zero has a large relative error in the scaled formats).
        public var maxRowRelative: Double
        /// Rows the storage cannot hold (an element it refuses), and the first one's key.
        public var unrepresentableRows: Int
        public var firstUnrepresentableKey: Int64?

        /// Measures `storage` on (n × dim) vectors, row i being `keys[i]`'s.
        static func measure(_ storage: VectorStorage, keys: [Int64], vectors: [Float], dim: Int) -> StorageError {
            var result = StorageError(storage: storage, maxAbsolute: 0, meanAbsolute: 0, maxRelative: 0, meanRelative: 0,
                                      maxRowRelative: 0, unrepresentableRows: 0, firstUnrepresentableKey: nil)
            guard dim > 0 else { return result }
            let codec = VectorCodec(storage: storage, dim: dim)
            let stored = UnsafeMutableRawPointer.allocate(byteCount: codec.rowBytes, alignment: 16)
            let decoded = UnsafeMutablePointer<Float>.allocate(capacity: dim)
            defer { stored.deallocate(); decoded.deallocate() }
            var absoluteSum = 0.0, relativeSum = 0.0
            var elements = 0, nonzero = 0
            vectors.withUnsafeBufferPointer { rows in
                for row in 0..<(rows.count / dim) {
                    let source = rows.baseAddress! + row * dim
                    if codec.encode(source, into: stored) != nil {
                        result.unrepresentableRows += 1
                        if result.firstUnrepresentableKey == nil { result.firstUnrepresentableKey = keys[row] }
                        continue
                    }
                    codec.decode(stored, into: decoded)
                    var rowMaximum = 0.0, rowError = 0.0
                    defer { if rowMaximum > 0 { result.maxRowRelative = max(result.maxRowRelative, rowError / rowMaximum) } }
                    for e in 0..<dim {
                        let x = Double(source[e])
                        let error = abs(Double(decoded[e]) - x)
                        rowMaximum = max(rowMaximum, abs(x))
                        rowError = max(rowError, error)
                        absoluteSum += error
                        result.maxAbsolute = max(result.maxAbsolute, error)
                        elements += 1
                        if x != 0 {
                            let relative = error / abs(x)
                            relativeSum += relative
                            result.maxRelative = max(result.maxRelative, relative)
                            nonzero += 1
                        }
                    }
                }
            }
            result.meanAbsolute = elements == 0 ? 0 : absoluteSum / Double(elements)
            result.meanRelative = nonzero == 0 ? 0 : relativeSum / Double(nonzero)
            return result
        }
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
    /// - Parameter storages: formats whose error against the files each table reports.
    public init(path: String, storages: [VectorStorage] = []) throws {
        if isDirectory(path) {
            kind = "sparse model folder"
            let folder = try SparseModelFolder(path: path, table: lastComponent(path), vecSize: nil)
            tables = [try Self.describe(folder, model: nil, group: nil, storages: storages).table]
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
                                                            group: plan.groups[plan.groupOfTable[table]].name,
                                                            storages: storages)
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
    static func describe(_ folder: SparseModelFolder, model: String?, group: String?,
                         storages: [VectorStorage] = []) throws -> (table: Table, keys: [Int64]) {
        let rows = try folder.readAll()
        var keys = rows.keys
        let nonFinite = rows.vectors.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
        let errors = storages.map { StorageError.measure($0, keys: rows.keys, vectors: rows.vectors, dim: folder.vecSize) }
        keys.sort()
        var distinct = 0
        for i in keys.indices where i == 0 || keys[i] != keys[i - 1] {
            keys[distinct] = keys[i]
            distinct += 1
        }
        keys.removeLast(keys.count - distinct)
        let range = keys.isEmpty ? nil : keys[0]...keys[keys.count - 1]
        return (Table(model: model, name: folder.table, path: folder.path, rows: folder.keyCount, distinctKeys: distinct,
                      vecSize: folder.vecSize, keyRange: range, group: group, nonFiniteElements: nonFinite,
                      storageErrors: errors), keys)
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
            if t.nonFiniteElements > 0 {
                out += "    \(t.nonFiniteElements) element(s) are NaN or infinite: fp32 serves them as they are; every other vector_storage refuses their rows\n"
            }
            for e in t.storageErrors {
                out += "    \(e.storage.rawValue): absolute error max \(Self.figure(e.maxAbsolute)), mean \(Self.figure(e.meanAbsolute)); relative error max \(Self.figure(e.maxRelative)), mean \(Self.figure(e.meanRelative)); largest error / its row's largest |x| \(Self.figure(e.maxRowRelative))"
                if let key = e.firstUnrepresentableKey {
                    out += "; \(e.unrepresentableRows) row(s) cannot be stored (first: key \(key))"
                }
                out += "\n"
            }
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

extension ModelInspection {
    /// A figure in four significant digits, as 1.234e-3 (0 for zero).
    static func figure(_ value: Double) -> String {
        guard value != 0, value.isFinite else { return value == 0 ? "0" : "\(value)" }
        var exponent = 0, mantissa = value.magnitude
        while mantissa >= 10 { mantissa /= 10; exponent += 1 }
        while mantissa < 1 { mantissa *= 10; exponent -= 1 }
        var digits = Int((mantissa * 1000).rounded())
        if digits == 10_000 { digits = 1000; exponent += 1 }
        let fraction = String(digits % 1000)
        return "\(value < 0 ? "-" : "")\(digits / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)e\(exponent)"
    }
}

/// The last component of a path.
func lastComponent(_ path: String) -> String {
    let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
    return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
}
