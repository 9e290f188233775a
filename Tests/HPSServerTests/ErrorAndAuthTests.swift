import HPS
import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Bad requests get the protocol's `{"error": "..."}` with the right status.
struct ErrorAndAuthTests {
    /// Posts `body` to the model's infer endpoint and returns status and error message.
    static func post(_ fixture: ServerFixture, _ body: ByteBuffer, model: String? = nil,
                     headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, String?) {
        let model = model ?? fixture.model
        return try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, headers: headers, body: body) { response in
                (response.status, response.errorMessage)
            }
        }
    }

    @Test("an unknown model is a 404 that lists the served models")
    func unknownModel() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: [1], numKeys: [1, 0])), model: "nope")
        #expect(status == .notFound)
        #expect(message?.contains("nope") == true && message?.contains(fixture.model) == true)
        let metadataStatus = try await fixture.test { client in
            try await client.execute(uri: "/v2/models/nope", method: .get) { $0.status }
        }
        #expect(metadataStatus == .notFound)
    }

    @Test("an unknown version is a 404")
    func unknownVersion() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let status = try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/versions/2", method: .get) { $0.status }
        }
        #expect(status == .notFound)
    }

    @Test("malformed JSON is a 400 with the position")
    func malformedJSON() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await Self.post(fixture, ByteBuffer(string: "{\"inputs\": [}"))
        #expect(status == .badRequest)
        #expect(message?.contains("not valid JSON") == true)
    }

    @Test("KEYS of datatype FP32 is a 400 naming the input")
    func wrongDatatype() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: [1], numKeys: [1, 0], keysType: "FP32")))
        #expect(status == .badRequest)
        #expect(message?.contains("KEYS") == true && message?.contains("FP32") == true)
    }

    @Test("a shape that does not match the data is a 400")
    func wrongShape() async throws {
        let fixture = try ServerFixture()
        let request: JSONValue = .object(JSONObject([("inputs", .array([
            tensor("KEYS", "INT64", [3], [1, 2]),
            tensor("NUMKEYS", "INT32", [2], [2, 0]),
        ]))]))
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: request))
        #expect(status == .badRequest)
        #expect(message?.contains("shape [3]") == true)
    }

    @Test("NUMKEYS not summing to the number of keys is a 400")
    func numKeysSum() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: [1, 2, 3], numKeys: [1, 1])))
        #expect(status == .badRequest)
        #expect(message?.contains("sums to 2") == true && message?.contains("3 keys") == true)
    }

    @Test("NUMKEYS with a count per table of another model is a 400")
    func numKeysCount() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: [1], numKeys: [1])))
        #expect(status == .badRequest)
        #expect(message?.contains("2 tables") == true)
    }

    @Test("a missing input is a 400 naming it")
    func missingInput() async throws {
        let fixture = try ServerFixture()
        let request: JSONValue = .object(JSONObject([("inputs", .array([tensor("KEYS", "INT64", [1], [1])]))]))
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: request))
        #expect(status == .badRequest)
        #expect(message?.contains("NUMKEYS is missing") == true)
    }

    @Test("more keys than max_batch_size × maxnum_catfeature_query_per_table_per_sample is a 400")
    func tooManyKeys() async throws {
        let fixture = try ServerFixture(batchSize: 4, keysPerSample: 2)
        let keys = Array(Int64(0)..<9)
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: keys, numKeys: [9, 0])))
        #expect(status == .badRequest)
        #expect(message?.contains("max_batch_size") == true)
    }

    @Test("a body over the size limit is a 413")
    func bodyTooLarge() async throws {
        var options = HPSServer.Options()
        options.maxBodyBytes = 200
        let fixture = try ServerFixture(options: options)
        let keys = Array(Int64(0)..<100)
        let (status, message) = try await Self.post(fixture, ByteBuffer(json: inferRequest(keys: keys, numKeys: [100, 0])))
        #expect(status == .contentTooLarge)
        #expect(message?.contains("200 bytes") == true)
    }

    @Test("with a token, a missing or wrong bearer token is a 401 and the right one passes; health needs none")
    func auth() async throws {
        var options = HPSServer.Options()
        options.token = "s3cret"
        let fixture = try ServerFixture(options: options)
        let body = ByteBuffer(json: inferRequest(keys: [1], numKeys: [1, 0]))
        let missing = try await Self.post(fixture, body)
        #expect(missing.0 == .unauthorized)
        #expect(missing.1?.contains("Authorization: Bearer") == true)
        let wrong = try await Self.post(fixture, body, headers: [.authorization: "Bearer nope"])
        #expect(wrong.0 == .unauthorized)
        let right = try await Self.post(fixture, body, headers: [.authorization: "Bearer s3cret"])
        #expect(right.0 == .ok)
        let (health, metadata) = try await fixture.test { client in
            (try await client.execute(uri: "/v2/health/ready", method: .get) { $0.status },
             try await client.execute(uri: "/v2", method: .get) { $0.status })
        }
        #expect(health == .ok)
        #expect(metadata == .unauthorized)
    }
}

/// The router's own errors in the protocol's format.
struct RouteErrorTests {
    @Test("an unknown endpoint is a 404 with an error body listing the endpoints")
    func unknownEndpoint() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await fixture.test { client in
            try await client.execute(uri: "/v2/nothing", method: .get) { ($0.status, $0.errorMessage) }
        }
        #expect(status == .notFound)
        #expect(message?.contains("/v2/models/<model>/infer") == true)
    }
}

/// Request compression, which tritonclient offers, is refused by name.
struct CompressionTests {
    @Test("a compressed request body is a 400 that says to send it uncompressed")
    func compressedBody() async throws {
        let fixture = try ServerFixture()
        let (status, message) = try await ErrorAndAuthTests.post(fixture, ByteBuffer(json: inferRequest(keys: [1], numKeys: [1, 0])),
                                                                 headers: [.contentEncoding: "gzip"])
        #expect(status == .badRequest)
        #expect(message?.contains("uncompressed") == true)
    }
}
