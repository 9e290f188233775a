import Foundation
import HPSStoreTestSupport
import Testing

@testable import HPS

/// A table held in memory: distinct keys and their vectors, made from a seed,
/// to write as a sparse model folder and to check lookups against.
struct RandomTable {
    /// (n) keys.
    var keys: [Int64]
    /// (n × vecSize) floats, row i for keys[i].
    var vectors: [Float]
    /// Floats per vector.
    var vecSize: Int

    /// `count` distinct keys drawn from `keyRange` (or a wide range), with random vectors.
    init(count: Int, vecSize: Int, seed: UInt64, keyRange: ClosedRange<Int64>? = nil) {
        var random = SplitMix64(seed: seed)
        var seen = Set<Int64>()
        seen.reserveCapacity(count)
        var keys: [Int64] = []
        keys.reserveCapacity(count)
        while keys.count < count {
            let key: Int64
            if let keyRange {
                let width = UInt64(keyRange.upperBound - keyRange.lowerBound) + 1
                key = keyRange.lowerBound + Int64(random.next() % width)
            } else {
                key = Int64(bitPattern: random.next() >> 2) - (1 << 60)
            }
            if seen.insert(key).inserted { keys.append(key) }
        }
        self.keys = keys
        self.vectors = (0..<(count * vecSize)).map { _ in random.nextFloat(-1, 1) }
        self.vecSize = vecSize
    }

    /// A table with the given keys (repeats allowed) and random vectors.
    init(keys: [Int64], vecSize: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        self.keys = keys
        self.vectors = (0..<(keys.count * vecSize)).map { _ in random.nextFloat(-1, 1) }
        self.vecSize = vecSize
    }

    /// The vector of row `i`.
    func row(_ i: Int) -> ArraySlice<Float> {
        vectors[(i * vecSize)..<((i + 1) * vecSize)]
    }

    /// A dictionary from key to vector; a repeated key keeps its last row.
    var reference: [Int64: [Float]] {
        var result: [Int64: [Float]] = [:]
        for (i, key) in keys.enumerated() { result[key] = Array(row(i)) }
        return result
    }

    /// Writes the table as a HugeCTR sparse model folder.
    @discardableResult
    func write(to path: String, table: String = "t") throws -> SparseModelFolder {
        try keys.withUnsafeBufferPointer { k in
            try vectors.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: path, table: table, keys: k, vectors: v, vecSize: vecSize)
            }
        }
    }
}

/// One table of a test model: where its folder is and how it is configured.
struct TableSpec {
    var name: String
    var folder: String
    var vecSize: Int
    var defaultValue: Double = 0
    var maxPerSample: Int = 8
}

/// Configuration files for tests.
enum TestConfiguration {
    /// A configuration of one model over `tables`.
    static func json(model: String = "m", tables: [TableSpec], maxBatchSize: Int = 64,
                     supportLongLong: Bool = true, fuse: Bool = false,
                     extra: [(String, JSONValue)] = [], modelExtra: [(String, JSONValue)] = []) -> JSONValue {
        let modelObject: [(String, JSONValue)] = [
            ("model", .string(model)),
            ("sparse_files", .array(tables.map { .string($0.folder) })),
            ("embedding_table_names", .array(tables.map { .string($0.name) })),
            ("embedding_vecsize_per_table", .array(tables.map { .integer(Int64($0.vecSize)) })),
            ("maxnum_catfeature_query_per_table_per_sample", .array(tables.map { .integer(Int64($0.maxPerSample)) })),
            ("default_value_for_each_table", .array(tables.map { .double($0.defaultValue) })),
            ("deployed_device_list", .array([.integer(0)])),
            ("max_batch_size", .integer(Int64(maxBatchSize))),
        ] + modelExtra
        return .object(JSONObject([
            ("supportlonglong", .bool(supportLongLong)),
            ("fuse_embedding_table", .bool(fuse)),
            ("models", .array([.object(JSONObject(modelObject))])),
        ] + extra))
    }

    /// Writes `json` to `directory/hps.json` and returns the path.
    @discardableResult
    static func write(_ json: JSONValue, to directory: String, name: String = "hps.json") throws -> String {
        let path = joinPath(directory, name)
        try (json.serialized(pretty: true) + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// Writes `json` and starts a server on it.
    static func server(_ json: JSONValue, in directory: String, parallelism: Int = 1) throws -> HierarchicalParameterServer {
        let path = try write(json, to: directory)
        return try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path),
                                               parallelism: parallelism)
    }
}

/// The size in bytes of the file at `path`, as the file system reports it.
func fileSize(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return try #require(attributes[.size] as? Int)
}

/// The rows a lookup of `keys` should return from `reference`, with `defaultValue` for a missing key.
func expectedRows(_ keys: [Int64], in reference: [Int64: [Float]], vecSize: Int, defaultValue: Float = 0) -> [Float] {
    keys.flatMap { reference[$0] ?? [Float](repeating: defaultValue, count: vecSize) }
}
