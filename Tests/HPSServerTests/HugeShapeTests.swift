import HPS
import HPSServer
import Testing

/// Shapes whose element count a body could never carry: refused with a
/// sentence before anything is allocated for them. A shape of 10¹⁵ elements
/// with one JSON value once made the parser reserve 8 PB and the server
/// abort (found by Tests/python/test_abuse.py).
struct HugeShapeTests {
    static func body(_ keys: String) -> [UInt8] {
        Array(#"{"inputs": [{"name": "KEYS", "datatype": "INT64", "shape": \#(keys)}, {"name": "NUMKEYS", "datatype": "INT32", "shape": [2], "data": [1, 0]}]}"#.utf8)
    }

    @Test("a JSON input of 10^15 elements with one value is a 400 naming the shape, and nothing is reserved for it",
          arguments: [#"[100000, 100000, 100000], "data": [1]"#, #"[2147483647, 2], "data": [1]"#,
                      #"[4611686018427387904], "data": [1]"#])
    func jsonShape(_ keys: String) {
        #expect(throws: InferenceError.self) { try InferenceRequest.parse(body: Self.body(keys), headerLength: nil) }
        do {
            _ = try InferenceRequest.parse(body: Self.body(keys), headerLength: nil)
        } catch {
            #expect(error.description.contains("input KEYS has shape"), "\(error)")
        }
    }

    @Test("a binary input whose shape times its element size overflows is a 400, not a trap")
    func binaryShape() {
        let header = #"{"inputs": [{"name": "KEYS", "datatype": "INT64", "shape": [2147483647, 2147483647, 4], "parameters": {"binary_data_size": 8}}]}"#
        let body = Array(header.utf8) + [UInt8](repeating: 1, count: 8)
        #expect(throws: InferenceError.self) { try InferenceRequest.parse(body: body, headerLength: header.utf8.count) }
    }
}
