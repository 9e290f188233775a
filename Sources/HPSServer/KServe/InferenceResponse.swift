import HPS
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP response of a successful inference: a JSON body, or, when the
/// output is asked for as binary data, a JSON header followed by the raw
/// little-endian FP32 vectors (Triton's binary tensor data extension).
struct InferenceResponse {
    /// The body: for a binary response, its JSON header, to which the lookup
    /// appends the vectors.
    var buffer: ByteBuffer
    /// The bytes of the JSON header of a binary response.
    let headerBytes: Int

    /// A JSON response to `request` for `model`, with output `OUTPUT0` of `shape`.
    static func json(model: ServedModel, request: InferenceRequest, shape: [Int], vectors: [Float]) -> Response {
        let header = self.header(model: model.name, id: request.id, shape: shape, vectors: vectors, binary: false)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: header.serialized())))
    }

    /// A binary response to `request` for `model`, with output `OUTPUT0` of
    /// `shape` and `floats` floats, which are to be appended to `buffer`.
    ///
    /// The header goes into a buffer with room for the vectors, placed so
    /// that they start 4-byte aligned: the lookup then writes the floats
    /// there directly (`LookupBatcher.lookup(_:appendingTo:)`).
    static func binary(model: ServedModel, request: InferenceRequest, shape: [Int], floats: Int) -> InferenceResponse {
        var header = ByteBuffer()
        header.reserveCapacity(256)
        let headerBytes = writeBinaryHeader(model: model.name, id: request.id, shape: shape, byteCount: floats * 4,
                                            into: &header)
        let padding = (4 - headerBytes % 4) % 4
        var buffer = ByteBuffer()
        buffer.reserveCapacity(padding + headerBytes + floats * 4)
        buffer.moveWriterIndex(forwardBy: padding)
        buffer.moveReaderIndex(forwardBy: padding)
        buffer.writeBuffer(&header)
        return InferenceResponse(buffer: buffer, headerBytes: headerBytes)
    }

    /// The HTTP response of a binary response whose vectors are in `buffer`.
    func http() -> Response {
        Response(status: .ok,
                 headers: [.contentType: "application/octet-stream", .inferenceHeaderContentLength: String(headerBytes)],
                 body: ResponseBody(byteBuffer: buffer))
    }

    /// The response's JSON: `id` (when the request has one), `model_name`,
    /// `model_version` and `outputs`, whose one output carries either its
    /// `data` or, for a binary output, `parameters.binary_data_size`.
    static func header(model: String, id: String?, shape: [Int], vectors: [Float], binary: Bool) -> JSONValue {
        var output: [(String, JSONValue)] = [
            ("name", .string(ServedModel.output)),
            ("datatype", .string(TensorDatatype.fp32.rawValue)),
            ("shape", .array(shape.map { .integer(Int64($0)) })),
        ]
        if binary {
            output.append(("parameters", .object(JSONObject([("binary_data_size", .integer(Int64(vectors.count * 4)))]))))
        } else {
            output.append(("data", .array(vectors.map { .double(Double($0)) })))
        }
        var fields: [(String, JSONValue)] = []
        if let id { fields.append(("id", .string(id))) }
        fields += [
            ("model_name", .string(model)),
            ("model_version", .string(ServedModel.version)),
            ("outputs", .array([.object(JSONObject(output))])),
        ]
        return .object(JSONObject(fields))
    }

    /// Writes the JSON header of a binary response, the same bytes as
    /// `header(…, binary: true).serialized()`, straight into `buffer`: one
    /// request's header is built without a tree of values or a string.
    /// - Returns: the bytes written (the `Inference-Header-Content-Length`).
    @discardableResult
    static func writeBinaryHeader(model: String, id: String?, shape: [Int], byteCount: Int,
                                  into buffer: inout ByteBuffer) -> Int {
        var written = 0
        if let id {
            written += buffer.writeStaticString("{\"id\":")
            written += writeJSONString(id, into: &buffer)
            written += buffer.writeStaticString(",\"model_name\":")
        } else {
            written += buffer.writeStaticString("{\"model_name\":")
        }
        written += writeJSONString(model, into: &buffer)
        written += buffer.writeStaticString(",\"model_version\":")
        written += writeJSONString(ServedModel.version, into: &buffer)
        written += buffer.writeStaticString(",\"outputs\":[{\"name\":")
        written += writeJSONString(ServedModel.output, into: &buffer)
        written += buffer.writeStaticString(",\"datatype\":\"FP32\",\"shape\":[")
        for (i, dimension) in shape.enumerated() {
            if i > 0 { written += buffer.writeStaticString(",") }
            written += buffer.writeString(String(dimension))
        }
        written += buffer.writeStaticString("],\"parameters\":{\"binary_data_size\":")
        written += buffer.writeString(String(byteCount))
        written += buffer.writeStaticString("}}]}")
        return written
    }

    /// A JSON string literal as `JSONValue.serialized()` writes it.
    private static func writeJSONString(_ string: String, into buffer: inout ByteBuffer) -> Int {
        let plain = !string.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        guard plain else { return buffer.writeString(JSONValue.string(string).serialized()) }
        return buffer.writeStaticString("\"") + buffer.writeString(string) + buffer.writeStaticString("\"")
    }
}
