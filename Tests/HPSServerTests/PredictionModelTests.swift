import HPS
import HPSDemo
import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The seed model served as lookups → Dense(1): one input per table, one prediction per sample.
struct PredictionModelTests {
    /// The predictions computed without the server: each table's vectors
    /// looked up alone, concatenated per sample (table after table), Dense(1),
    /// as the seed notebook's unfused model computes them.
    static func expectedPredictions(_ fixture: ServerFixture, keys: [[Int64]], samples: Int) throws -> [Float] {
        let seed = fixture.seed, k = seed.keysPerSample, dim = seed.dim
        let vectors = try keys.enumerated().map { try fixture.session.lookup(table: $0.offset, keys: $0.element) }
        var input: [Float] = []
        for s in 0..<samples {
            for table in 0..<seed.tables { input += vectors[table][(s * k * dim)..<((s + 1) * k * dim)] }
        }
        var predictions = [Float](repeating: 0, count: samples)
        let dense = DenseLayer(inputs: seed.tables * k * dim, seed: seed.seed)
        input.withUnsafeBufferPointer { input in predictions.withUnsafeMutableBufferPointer { dense.predict(input, into: $0) } }
        return predictions
    }

    /// A request of KEYS0, KEYS1, each [samples, k], as binary INT32 or JSON INT64.
    static func request(_ keys: [[Int64]], samples: Int, k: Int, binary: Bool) -> (HTTPFields, ByteBuffer) {
        var inputs: [JSONValue] = []
        for (table, tableKeys) in keys.enumerated() {
            var fields: [(String, JSONValue)] = [("name", .string("KEYS\(table)")), ("datatype", binary ? "INT32" : "INT64"),
                                                 ("shape", [.integer(Int64(samples)), .integer(Int64(k))])]
            if binary {
                fields.append(("parameters", ["binary_data_size": .integer(Int64(tableKeys.count * 4))]))
            } else {
                fields.append(("data", .array(tableKeys.map { .integer($0) })))
            }
            inputs.append(.object(JSONObject(fields)))
        }
        let header: JSONValue = .object(JSONObject([("inputs", .array(inputs)),
                                                    ("outputs", [["name": "OUTPUT0", "parameters": ["binary_data": .bool(binary)]]])]))
        var body = ByteBuffer()
        let length = body.writeString(header.serialized())
        guard binary else { return ([:], body) }
        for tableKeys in keys { for key in tableKeys { body.writeInteger(Int32(key), endianness: .little) } }
        return ([HTTPField.Name("Inference-Header-Content-Length")!: String(length)], body)
    }

    /// Three samples of 26 keys per table, one key missing from table 1.
    private func keys(_ fixture: ServerFixture) -> [[Int64]] {
        var random = SplitMix64(seed: 11)
        var keys = (0..<2).map { table in (0..<(3 * 26)).map { _ in Int64(table * 100) + Int64(random.next() % 100) } }
        keys[1][5] = 99_999
        return keys
    }

    @Test("the metadata names one input per table, [-1, keys per sample], and OUTPUT0 [-1, 1]")
    func metadata() async throws {
        let fixture = try ServerFixture(prediction: true)
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(fixture.model)_dense", method: .get) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["inputs"]?.arrayValue?.map { $0["name"] } == ["KEYS0", "KEYS1"])
                #expect(json["inputs"]?.arrayValue?.map { $0["shape"] } == [[-1, 26], [-1, 26]])
                #expect(json["outputs"]?.arrayValue?.first?["shape"] == [-1, 1])
            }
        }
    }

    @Test("JSON inputs give the predictions of lookups → concat → Dense(1), shape [batch, 1]", arguments: [false, true])
    func predictions(binary: Bool) async throws {
        let fixture = try ServerFixture(prediction: true)
        let keys = keys(fixture)
        let expected = try Self.expectedPredictions(fixture, keys: keys, samples: 3)
        #expect(expected.count == 3 && Set(expected).count == 3)
        let (headers, body) = Self.request(keys, samples: 3, k: 26, binary: binary)
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(fixture.model)_dense/infer", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .ok)
                var body = response.body
                let got: [Float]
                if binary {
                    let length = try #require(response.headers[HTTPField.Name("Inference-Header-Content-Length")!].flatMap { Int($0) })
                    let headerText = body.readString(length: length)
                    let header = try JSONValue.parse(try #require(headerText))
                    #expect(header["outputs"]?.arrayValue?.first?["shape"] == [3, 1])
                    var values: [Float] = []
                    while let bits = body.readInteger(endianness: .little, as: UInt32.self) { values.append(Float(bitPattern: bits)) }
                    got = values
                } else {
                    let output = try response.json["outputs"]?.arrayValue?.first
                    #expect(output?["shape"] == [3, 1])
                    got = floats(output?["data"])
                }
                #expect(got == expected)
            }
        }
    }

    @Test("the predictor's flat entry (keys table after table, into the caller's buffer) equals the per-table one and refuses sizes that do not fit")
    func flatPredict() throws {
        let fixture = try ServerFixture(prediction: true)
        let model = try PredictionModel(session: fixture.session, seed: fixture.seed)
        let keys = keys(fixture)
        let (predictions, counts) = try model.predict(keys: keys, samples: 3)
        #expect(predictions == (try Self.expectedPredictions(fixture, keys: keys, samples: 3)))
        #expect(counts.keys == 2 * 3 * 26 && counts.defaults == 1)
        let flat = keys.flatMap { $0 }
        var out = [Float](repeating: .nan, count: 3)
        _ = try flat.withUnsafeBufferPointer { (flat) in
            try out.withUnsafeMutableBufferPointer { try model.predict(keys: flat, samples: 3, into: $0) }
        }
        #expect(out == predictions)
        #expect(throws: LookupError.self) {
            try flat.dropLast().withUnsafeBufferPointer { (flat) in
                try out.withUnsafeMutableBufferPointer { try model.predict(keys: flat, samples: 3, into: $0) }
            }
        }
        var short = [Float](repeating: 0, count: 2)
        let error = #expect(throws: LookupError.self) {
            try flat.withUnsafeBufferPointer { (flat) in
                try short.withUnsafeMutableBufferPointer { try model.predict(keys: flat, samples: 3, into: $0) }
            }
        }
        #expect(error.map { "\($0)" }?.contains("holds 2 floats but the batch has 3 samples") == true)
    }

    @Test("a missing table input, a wrong keys-per-sample or differing batches are 400s naming the input")
    func badInputs() async throws {
        let fixture = try ServerFixture(prediction: true)
        let keys = keys(fixture)
        let uri = "/v2/models/\(fixture.model)_dense/infer"
        try await fixture.test { client in
            let (_, onlyOne) = Self.request([keys[0]], samples: 3, k: 26, binary: false)
            try await client.execute(uri: uri, method: .post, body: onlyOne) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("missing: KEYS1") == true)
            }
            let (_, wrongK) = Self.request(keys, samples: 6, k: 13, binary: false)
            try await client.execute(uri: uri, method: .post, body: wrongK) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("[batch, 26]") == true)
            }
            let uneven: JSONValue = .object(JSONObject([("inputs", .array([
                tensor("KEYS0", "INT64", [3, 26], keys[0]), tensor("KEYS1", "INT64", [2, 26], Array(keys[1][0..<52])),
            ]))]))
            try await client.execute(uri: uri, method: .post, body: ByteBuffer(json: uneven)) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("the same batch") == true)
            }
        }
    }

    @Test("the HPS model of the same tables is still served, KEYS and NUMKEYS → vectors")
    func hpsModelBeside() async throws {
        let fixture = try ServerFixture(prediction: true)
        let expected = try fixture.expected([[1, 2], [150]])
        try await fixture.test { client in
            let body = ByteBuffer(json: inferRequest(keys: [1, 2, 150], numKeys: [2, 1]))
            try await client.execute(uri: "/v2/models/\(fixture.model)/infer", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            }
            try await client.execute(uri: "/v2/repository/index", method: .post) { response in
                let json = try response.json
                #expect(json.arrayValue?.map { $0["name"] } == [.string(fixture.model), .string(fixture.model + "_dense")])
            }
        }
    }
}
