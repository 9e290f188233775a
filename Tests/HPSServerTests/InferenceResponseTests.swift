import HPS
import NIOCore
import Testing

@testable import HPSServer

/// The binary response's JSON header, written byte by byte for speed.
struct InferenceResponseTests {
    @Test("the binary header written directly is the JSON the tree of values serializes to",
          arguments: [nil, "", "req-1", "quote \" backslash \\ newline \n tab \t bell \u{07} é ✓"] as [String?])
    func binaryHeaderMatchesJSON(id: String?) throws {
        for (model, shape) in [("8_table", [208, 128]), ("odd \"model\"\\", [3]), ("m", [0, 16]), ("dense", [256, 1])] {
            let floats = shape.reduce(1, *)
            var buffer = ByteBuffer()
            let written = InferenceResponse.writeBinaryHeader(model: model, id: id, shape: shape, byteCount: floats * 4,
                                                              into: &buffer)
            let expected = InferenceResponse.header(model: model, id: id, shape: shape,
                                                    vectors: [Float](repeating: 0, count: floats), binary: true).serialized()
            #expect(written == buffer.readableBytes)
            #expect(buffer.readString(length: written) == expected)
            // And it reads back as the protocol's response.
            let parsed = try JSONValue.parse(expected)
            #expect(parsed["id"]?.stringValue == id)
            #expect(parsed["model_name"]?.stringValue == model)
            #expect(parsed["outputs"]?.arrayValue?.first?["parameters"]?["binary_data_size"] == .integer(Int64(floats * 4)))
        }
    }
}
