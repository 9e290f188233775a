public import HPS

/// One HPS model served as Triton's HPS backend serves it: inputs `KEYS`
/// (INT64 or INT32, all tables' keys concatenated) and `NUMKEYS` (INT32,
/// keys per table), one FP32 output `OUTPUT0` with the vectors in key order.
///
/// Thread safety: `infer` may run concurrently (the session allows it).
public struct ServedModel: Sendable {
    /// The only version served.
    public static let version = "1"
    /// The keys input.
    public static let keysInput = "KEYS"
    /// The keys-per-table input.
    public static let numKeysInput = "NUMKEYS"
    /// The vectors output.
    public static let output = "OUTPUT0"

    /// The model's session.
    public let session: LookupSession

    /// Serves a session.
    public init(session: LookupSession) { self.session = session }

    /// The model's name.
    public var name: String { session.model.name }

    /// The vec size shared by all tables, or `nil` when they differ.
    public var commonVecSize: Int? {
        let sizes = Set(session.model.vecSizes)
        return sizes.count == 1 ? sizes.first : nil
    }

    /// The model metadata of the KServe v2 protocol.
    public func metadata() -> JSONValue {
        func tensor(_ name: String, _ datatype: TensorDatatype, _ shape: [Int64]) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("datatype", .string(datatype.rawValue)),
                                ("shape", .array(shape.map { .integer($0) }))]))
        }
        return .object(JSONObject([
            ("name", .string(name)),
            ("versions", .array([.string(Self.version)])),
            ("platform", .string("hps")),
            // As Triton's HPS backend declares them; INT32 keys are accepted too.
            ("inputs", .array([tensor(Self.keysInput, .int64, [-1]), tensor(Self.numKeysInput, .int32, [-1])])),
            ("outputs", .array([tensor(Self.output, .fp32, [-1])])),
        ]))
    }

    /// The model configuration in the form Triton returns for
    /// `/v2/models/<model>/config`, as Triton's HPS backend's `config.pbtxt` declares it.
    public func tritonConfiguration() -> JSONValue {
        func tensor(_ name: String, _ type: String) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("data_type", .string(type)), ("dims", [-1])]))
        }
        return .object(JSONObject([
            ("name", .string(name)),
            ("platform", "hps"),
            ("backend", "hps"),
            ("max_batch_size", 0),
            ("input", .array([tensor(Self.keysInput, "TYPE_INT64"), tensor(Self.numKeysInput, "TYPE_INT32")])),
            ("output", .array([tensor(Self.output, "TYPE_FP32")])),
            ("parameters", .object(JSONObject([
                ("embedding_table_names", .string(session.model.tableNames.joined(separator: ","))),
                ("embedding_vecsize_per_table", .string(session.model.vecSizes.map(String.init).joined(separator: ","))),
                ("max_keys_per_table", .string((0..<session.model.tableNames.count)
                    .map { String(session.model.maxKeysPerLookup(table: $0)) }.joined(separator: ","))),
            ]))),
        ]))
    }

    /// The checked inputs of one request: keys split per table.
    public struct Batch: Sendable, Equatable {
        /// For each table in model order, its keys.
        public var keysPerTable: [[Int64]]
        /// Keys in all.
        public var totalKeys: Int
    }

    /// Checks the inputs and outputs of a request against the model.
    /// - Throws: `InferenceError.invalidInput` naming the input and what is wrong.
    public func batch(of request: InferenceRequest) throws(InferenceError) -> Batch {
        var keys: InferenceRequest.Input? = nil
        var numKeys: InferenceRequest.Input? = nil
        for input in request.inputs {
            switch input.name {
            case Self.keysInput: keys = input
            case Self.numKeysInput: numKeys = input
            default:
                throw .invalidInput("model \(name) has no input \"\(input.name)\"; its inputs are KEYS (INT64 or INT32) and NUMKEYS (INT32)")
            }
        }
        guard let keys, let numKeys else {
            throw .invalidInput("model \(name) needs both inputs KEYS (all tables' keys concatenated) and NUMKEYS (keys per table); \(keys == nil ? "KEYS" : "NUMKEYS") is missing")
        }
        for output in request.outputs where output.name != Self.output {
            throw .invalidInput("model \(name) has no output \"\(output.name)\"; its output is OUTPUT0")
        }
        guard keys.shape.count == 1 || (keys.shape.count == 2 && keys.shape[0] == 1) else {
            throw .invalidInput("input KEYS has shape \(keys.shape); it must be [n] (or [1, n])")
        }
        guard numKeys.datatype == .int32 || numKeys.datatype == .int64 else {
            throw .invalidInput("input NUMKEYS has datatype \(numKeys.datatype.rawValue); it must be INT32")
        }
        let tables = session.model.tableNames.count
        guard numKeys.values.count == tables else {
            throw .invalidInput("input NUMKEYS has \(numKeys.values.count) elements but model \(name) has \(tables) tables (\(session.model.tableNames.joined(separator: ", "))); give one count per table")
        }
        var sum = 0
        for (table, count) in numKeys.values.enumerated() {
            guard count >= 0 else {
                throw .invalidInput("NUMKEYS[\(table)] is \(count); key counts must not be negative")
            }
            sum += Int(clamping: count)
            guard sum <= keys.values.count else { break }
        }
        guard sum == keys.values.count else {
            throw .invalidInput("NUMKEYS \(numKeys.values) sums to \(numKeys.values.reduce(0, &+)) but KEYS has \(keys.values.count) keys; they must be equal")
        }
        var keysPerTable: [[Int64]] = []
        keysPerTable.reserveCapacity(tables)
        var start = 0
        for count in numKeys.values {
            keysPerTable.append(Array(keys.values[start..<(start + Int(count))]))
            start += Int(count)
        }
        return Batch(keysPerTable: keysPerTable, totalKeys: keys.values.count)
    }

    /// Looks up a checked batch: blocking CPU work; run it off the event loop.
    /// - Returns: (total keys × vec size) floats, table after table, and what the lookup found where.
    public func lookup(_ batch: Batch) throws(InferenceError) -> (vectors: [Float], counts: LookupCounts) {
        let vecSizes = session.model.vecSizes
        var total = 0
        for (table, keys) in batch.keysPerTable.enumerated() { total += keys.count * vecSizes[table] }
        var vectors = [Float](repeating: 0, count: total)
        let flatKeys = batch.keysPerTable.flatMap { $0 }
        do throws(LookupError) {
            let counts = try flatKeys.withUnsafeBufferPointer { (keys) throws(LookupError) -> LookupCounts in
                try vectors.withUnsafeMutableBufferPointer { (output) throws(LookupError) -> LookupCounts in
                    var runs: [LookupRun] = []
                    var keyOffset = 0, floatOffset = 0
                    for (table, tableKeys) in batch.keysPerTable.enumerated() where !tableKeys.isEmpty {
                        runs.append(LookupRun(member: table, keys: keys.baseAddress! + keyOffset, count: tableKeys.count,
                                              output: output.baseAddress! + floatOffset))
                        keyOffset += tableKeys.count
                        floatOffset += tableKeys.count * vecSizes[table]
                    }
                    return try runs.withUnsafeBufferPointer { (runs) throws(LookupError) -> LookupCounts in
                        try session.lookup(runs)
                    }
                }
            }
            return (vectors, counts)
        } catch {
            throw .lookup(error)
        }
    }

    /// The shape of `OUTPUT0`: [keys, vec size] when all tables share a vec
    /// size, else [floats] (the vectors of differing sizes laid end to end).
    public func outputShape(_ batch: Batch, floats: Int) -> [Int] {
        if let vecSize = commonVecSize { return [batch.totalKeys, vecSize] }
        return [floats]
    }
}
