import HPS
import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Triton's binary tensor data extension.
struct BinaryTensorTests {
    /// A request whose KEYS (INT64) and NUMKEYS (INT32) follow the JSON header as raw bytes.
    static func binaryRequest(keys: [Int64], numKeys: [Int32], binaryOutput: Bool) -> (HTTPFields, ByteBuffer) {
        let header: JSONValue = .object(JSONObject([
            ("inputs", .array([
                .object(JSONObject([("name", "KEYS"), ("datatype", "INT64"), ("shape", [.integer(Int64(keys.count))]),
                                    ("parameters", ["binary_data_size": .integer(Int64(keys.count * 8))])])),
                .object(JSONObject([("name", "NUMKEYS"), ("datatype", "INT32"), ("shape", [.integer(Int64(numKeys.count))]),
                                    ("parameters", ["binary_data_size": .integer(Int64(numKeys.count * 4))])])),
            ])),
            ("outputs", [["name": "OUTPUT0", "parameters": ["binary_data": .bool(binaryOutput)]]]),
        ]))
        var body = ByteBuffer()
        let length = body.writeString(header.serialized())
        for key in keys { body.writeInteger(key, endianness: .little) }
        for count in numKeys { body.writeInteger(count, endianness: .little) }
        let name = HTTPField.Name("Inference-Header-Content-Length")!
        return ([name: String(length)], body)
    }

    @Test("binary inputs and a binary output: JSON header, then raw little-endian FP32")
    func binaryInOut() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[3, 4], [199]])
        let (headers, body) = Self.binaryRequest(keys: [3, 4, 199], numKeys: [2, 1], binaryOutput: true)
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .ok)
                let length = try #require(response.headers[HTTPField.Name("Inference-Header-Content-Length")!].flatMap { Int($0) })
                var body = response.body
                let headerText = body.readString(length: length)
                let header = try JSONValue.parse(try #require(headerText))
                let output = header["outputs"]?.arrayValue?.first
                #expect(output?["shape"] == [3, 8])
                #expect(output?["parameters"]?["binary_data_size"] == .integer(Int64(expected.count * 4)))
                #expect(output?["data"] == nil)
                var values: [Float] = []
                while let bits = body.readInteger(endianness: .little, as: UInt32.self) { values.append(Float(bitPattern: bits)) }
                #expect(values == expected)
            }
        }
    }

    @Test("binary inputs with a JSON output")
    func binaryInJSONOut() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[10], [110, 111]])
        let (headers, body) = Self.binaryRequest(keys: [10, 110, 111], numKeys: [1, 2], binaryOutput: false)
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .ok)
                #expect(response.headers[HTTPField.Name("Inference-Header-Content-Length")!] == nil)
                let json = try response.json
                #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            }
        }
    }

    @Test("the request parameter binary_data_output makes every output binary")
    func binaryDataOutputParameter() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        try await fixture.test { client in
            let request: JSONValue = .object(JSONObject([
                ("inputs", inferRequest(keys: [1], numKeys: [1, 0])["inputs"]!),
                ("parameters", ["binary_data_output": true]),
            ]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: ByteBuffer(json: request)) { response in
                #expect(response.status == .ok)
                let length = try #require(response.headers[HTTPField.Name("Inference-Header-Content-Length")!].flatMap { Int($0) })
                #expect(response.body.readableBytes == length + 8 * 4)
            }
        }
    }

    @Test("binary data shorter than binary_data_size is a 400 naming the sizes")
    func truncatedBinary() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let (headers, full) = Self.binaryRequest(keys: [1, 2], numKeys: [2, 0], binaryOutput: true)
        var truncated = full
        truncated.moveWriterIndex(to: truncated.writerIndex - 3)
        let body = truncated
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("binary_data_size") == true)
            }
        }
    }

    @Test("binary data longer than the inputs declare is a 400 naming both sizes")
    func extraBinary() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let (headers, full) = Self.binaryRequest(keys: [1, 2], numKeys: [2, 0], binaryOutput: true)
        var longer = full
        longer.writeInteger(UInt32(7))
        let body = longer
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("add up to 24") == true)
            }
        }
    }
    @Test("binary INT64 and INT32 inputs decode to exactly the values sent, at every alignment of the binary data",
          arguments: 0..<8)
    func decodedAtEveryAlignment(padding: Int) throws {
        var random = SplitMix64(seed: UInt64(100 + padding))
        let wide = (0..<1_003).map { _ in Int64(bitPattern: random.next()) }
        let narrow = (0..<517).map { _ in Int32(truncatingIfNeeded: random.next()) }
        let header: JSONValue = .object(JSONObject([
            ("inputs", .array([
                .object(JSONObject([("name", "A"), ("datatype", "INT64"), ("shape", [.integer(Int64(wide.count))]),
                                    ("parameters", ["binary_data_size": .integer(Int64(wide.count * 8))])])),
                .object(JSONObject([("name", "B"), ("datatype", "INT32"), ("shape", [.integer(Int64(narrow.count))]),
                                    ("parameters", ["binary_data_size": .integer(Int64(narrow.count * 4))])])),
            ])),
        ]))
        // Spaces after the JSON move the binary data to every offset modulo 8.
        var body = Array((header.serialized() + String(repeating: " ", count: padding)).utf8)
        let headerLength = body.count
        for value in wide { withUnsafeBytes(of: value.littleEndian) { body += $0 } }
        for value in narrow { withUnsafeBytes(of: value.littleEndian) { body += $0 } }
        let request = try InferenceRequest.parse(body: body, headerLength: headerLength)
        #expect(request.inputs.map(\.name) == ["A", "B"])
        #expect(request.inputs[0].values == wide)
        #expect(request.inputs[1].values == narrow.map(Int64.init))
    }
}
