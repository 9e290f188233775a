package import HPS
package import HTTPTypes

/// A request the server refuses, with the HTTP status of the KServe v2
/// protocol and one sentence the client can act on.
///
/// It is sent as `{"error": "<description>"}`, which Triton's clients raise as
/// `InferenceServerException` with that message.
package enum InferenceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No model of that name is served (404).
    case unknownModel(String, available: [String])
    /// A version other than the one served ("1") (404).
    case unknownVersion(model: String, version: String)
    /// The body is not valid JSON, or the JSON is not an inference request (400).
    case malformed(String)
    /// An input's name, datatype, shape or data is wrong (400).
    case invalidInput(String)
    /// The lookup refused the keys, e.g. more than the model's limit (400).
    case lookup(LookupError)
    /// The body is larger than the server accepts (413).
    case bodyTooLarge(limit: Int)
    /// A gRPC request message is larger than the server accepts (RESOURCE_EXHAUSTED; 413 over HTTP).
    case messageTooLarge(bytes: Int, limit: Int)
    /// No or a wrong bearer token (401).
    case unauthorized(String)
    /// As many requests of the model wait for a lookup as the server queues (503).
    case overloaded(model: String, limit: Int)
    /// The server is shutting down and did not look the request up (503).
    case shuttingDown(model: String)
    /// The model is in the repository but not served: unloaded, or its last load failed (404).
    case unavailable(model: String, reason: String)
    /// A load or unload the server does not allow (400).
    case modelControl(String)
    /// A load that failed; the version served before, if any, is still served (400).
    case loadFailed(model: String, reason: String)

    /// The HTTP status the protocol gives this error.
    package var status: HTTPResponse.Status {
        switch self {
        case .unknownModel, .unknownVersion, .unavailable: .notFound
        case .malformed, .invalidInput, .lookup, .modelControl, .loadFailed: .badRequest
        case .bodyTooLarge, .messageTooLarge: .contentTooLarge
        case .unauthorized: .unauthorized
        case .overloaded, .shuttingDown: .serviceUnavailable
        }
    }

    /// One sentence a user can act on.
    package var description: String {
        switch self {
        case let .unknownModel(name, available):
            "no model named \"\(name)\" is served; the models are \(available.joined(separator: ", "))"
        case let .unknownVersion(model, version):
            "model \(model) has no version \"\(version)\"; the only version served is \"1\""
        case let .malformed(reason):
            reason
        case let .invalidInput(reason):
            reason
        case let .lookup(error):
            error.description
        case let .bodyTooLarge(limit):
            "the request body is larger than the server's limit of \(limit) bytes (hps serve --max-body-bytes)"
        case let .messageTooLarge(bytes, limit):
            "the request message of \(bytes) bytes is larger than the server's limit of \(limit) bytes; raise it with hps serve --max-body-bytes"
        case let .unauthorized(reason):
            reason
        case let .overloaded(model, limit):
            "model \(model) already has \(limit) requests waiting for a lookup, the most the server queues (hps serve --max-queued-requests); retry later, or raise the limit"
        case let .shuttingDown(model):
            "the server is shutting down and did not look up the request to model \(model); retry it on another server"
        case let .unavailable(model, reason):
            reason == "unloaded"
                ? "model \(model) is not served: it was unloaded; load it with POST v2/repository/models/\(model)/load"
                : "model \(model) is not served: its last load failed: \(reason)"
        case let .modelControl(reason):
            reason
        case let .loadFailed(model, reason):
            "failed to load model \(model): \(reason)"
        }
    }
}
