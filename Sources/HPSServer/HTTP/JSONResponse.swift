import HPS
import HTTPTypes
import Hummingbird
import NIOCore

extension HTTPField.Name {
    /// Triton's binary tensor data extension: bytes of JSON before the binary tensors.
    static let inferenceHeaderContentLength = Self("Inference-Header-Content-Length")!
}

extension Response {
    /// A JSON body.
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized())))
    }

    /// The protocol's error body, `{"error": "..."}`.
    static func error(_ error: InferenceError) -> Response {
        var response = self.error(error.description, status: error.status)
        if case .unauthorized = error { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    /// The protocol's error body, `{"error": "<message>"}`.
    static func error(_ message: String, status: HTTPResponse.Status) -> Response {
        json(.object(JSONObject([("error", .string(message))])), status: status)
    }
}
