import HPSDemo
import HPS
import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore

/// A served two-table model (vocab 100, dim 8, INT64 keys: table i holds
/// keys [100·i, 100·(i+1))) written to a temporary folder; with `prediction`,
/// also its seed prediction model (lookups → Dense(1)) as `<model>_dense`.
struct ServerFixture {
    let directory: TemporaryDirectory
    let server: HPSServer
    let session: LookupSession
    let seed: SeedModel

    init(batchSize: Int = 256, keysPerSample: Int = 26, options: HPSServer.Options = HPSServer.Options(),
         prediction: Bool = false) throws {
        directory = try TemporaryDirectory(prefix: "hps-server")
        var seed = SeedModel()
        seed.tables = 2
        seed.vocab = 100
        seed.dim = 8
        seed.keyType = .int64
        seed.batchSize = batchSize
        seed.keysPerSample = keysPerSample
        self.seed = seed
        let path = try seed.write(to: directory.path)
        let parameterServer = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), parallelism: 2)
        session = try parameterServer.session(model: seed.modelName)
        server = try HPSServer(parameterServer: parameterServer, options: options,
                               predictionModels: prediction ? [(seed.modelName + "_dense", try PredictionModel(session: session, seed: seed))] : [])
        // The tables are in the in-memory store now; the files are no longer read.
        directory.remove()
    }

    /// The model's name.
    var model: String { session.model.name }

    /// Runs `body` against the KServe router in process.
    func test<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        let app = Application(router: server.router())
        return try await app.test(.router, body)
    }

    /// The vectors a direct lookup gives, table after table.
    func expected(_ keysPerTable: [[Int64]]) throws -> [Float] {
        var result: [Float] = []
        for (table, keys) in keysPerTable.enumerated() { result += try session.lookup(table: table, keys: keys) }
        return result
    }
}

extension TestResponse {
    /// The body parsed as JSON.
    var json: JSONValue {
        get throws { try JSONValue.parse(String(buffer: body)) }
    }

    /// The `error` member of a protocol error body.
    var errorMessage: String? {
        (try? json)?["error"]?.stringValue
    }
}

extension ByteBuffer {
    /// A JSON body.
    init(json: JSONValue) { self.init(string: json.serialized()) }
}

/// A KServe v2 JSON tensor.
func tensor(_ name: String, _ datatype: String, _ shape: [Int64], _ data: [Int64]) -> JSONValue {
    .object(JSONObject([("name", .string(name)), ("datatype", .string(datatype)),
                        ("shape", .array(shape.map { .integer($0) })), ("data", .array(data.map { .integer($0) }))]))
}

/// A request with KEYS and NUMKEYS as JSON data.
func inferRequest(keys: [Int64], numKeys: [Int64], keysType: String = "INT64") -> JSONValue {
    .object(JSONObject([("inputs", .array([
        tensor("KEYS", keysType, [Int64(keys.count)], keys),
        tensor("NUMKEYS", "INT32", [Int64(numKeys.count)], numKeys),
    ]))]))
}

/// The floats of a JSON array of numbers.
func floats(_ value: JSONValue?) -> [Float] {
    (value?.arrayValue ?? []).map { element in
        switch element {
        case let .double(d): Float(d)
        case let .integer(i): Float(i)
        default: .nan
        }
    }
}
