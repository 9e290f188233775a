#if Serving
package import GRPCCore

/// The gRPC status of each refusal, as the KServe v2 gRPC protocol gives the
/// HTTP statuses: thrown from a gRPC handler, an `InferenceError` ends the RPC
/// with this code and the same one-sentence message the HTTP body carries.
extension InferenceError: RPCErrorConvertible {
    /// unknown model or version → NOT_FOUND, a bad request → INVALID_ARGUMENT,
    /// a request over the size limit → RESOURCE_EXHAUSTED, no or a wrong token → UNAUTHENTICATED,
    /// a full queue or a server shutting down → UNAVAILABLE (clients may retry).
    package var rpcErrorCode: RPCError.Code {
        switch self {
        case .unknownModel, .unknownVersion, .unavailable: .notFound
        case .malformed, .invalidInput, .lookup, .modelControl, .loadFailed: .invalidArgument
        case .bodyTooLarge, .messageTooLarge: .resourceExhausted
        case .unauthorized: .unauthenticated
        case .overloaded, .shuttingDown: .unavailable
        }
    }

    /// The same sentence as over HTTP.
    package var rpcErrorMessage: String { description }

    /// No cause is sent: the message says it all.
    package var rpcErrorCause: (any Error)? { nil }
}
#endif
