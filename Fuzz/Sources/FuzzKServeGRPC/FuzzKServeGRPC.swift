import FuzzKServeSupport
import FuzzSupport
@testable import HPSServer
import SwiftProtobuf

/// The KServe v2 gRPC request conversion (`ModelInferRequest` bytes, decoded
/// by SwiftProtobuf, to `InferenceRequest(grpc:)`), and the model's checks of
/// the converted request, on arbitrary message bytes.
///
/// Checks: as the HTTP harness's, for requests whose bytes decode.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKServeGRPC(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard let message = try? Inference_ModelInferRequest(serializedBytes: Array(bytes)) else { return 0 }
    let request: InferenceRequest
    do {
        request = try InferenceRequest(grpc: message)
    } catch {
        check(!error.description.isEmpty, "a refusal without a message")
        return 0
    }
    FuzzedModel.checkAnswers(request)
    return 0
}
