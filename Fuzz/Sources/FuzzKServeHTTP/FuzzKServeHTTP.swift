import FuzzKServeSupport
import FuzzSupport
@testable import HPSServer

/// The KServe v2 HTTP request parser (`InferenceRequest.parse`: the JSON
/// header and Triton's binary tensor data extension), and the model's checks
/// of the parsed request, on arbitrary bodies.
///
/// The input is laid out as
///
///     byte 0      0: no Inference-Header-Content-Length; otherwise one is sent
///     bytes 1–2   its value (little-endian; may exceed the body)
///     then        the body
///
/// Checks: an accepted request's inputs each hold as many values as their
/// shape's product; a request the model accepts is answered with each key's
/// row, every element written (`FuzzedModel.checkAnswers`); every refusal has
/// a message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKServeHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard bytes.count >= 3 else { return 0 }
    let headerLength: Int? = bytes[0] == 0 ? nil : Int(bytes[1]) | Int(bytes[2]) << 8
    let body = UnsafeRawBufferPointer(rebasing: bytes[3...])
    let request: InferenceRequest
    do {
        request = try InferenceRequest.parse(body: body, headerLength: headerLength)
    } catch {
        check(!error.description.isEmpty, "a refusal without a message")
        return 0
    }
    FuzzedModel.checkAnswers(request)
    return 0
}
