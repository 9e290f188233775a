#if Serving
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import HPSServer
import SwiftProtobuf

/// KServe v2 over gRPC: `inference.GRPCInferenceService/ModelInfer` with the
/// inputs (KEYS and NUMKEYS, or KEYS0…) in `raw_input_contents` and OUTPUT0
/// read from `raw_output_contents`, as tritonclient.grpc sends and reads
/// them. Each connection is its own HTTP/2 connection, one request in flight
/// at a time.
struct GRPCTransport: LoadTransport {
    let host: String
    let port: Int
    let model: String

    func connect() async throws -> any LoadConnection {
        try GRPCConnection(host: host, port: port, model: model)
    }

    func shutdown() async throws {}
}

/// One HTTP/2 connection with its gRPC client running in a task.
final class GRPCConnection: LoadConnection {
    typealias Transport = HTTP2ClientTransport.Posix
    let client: GRPCClient<Transport>
    let service: Inference_GRPCInferenceService.Client<Transport>
    let running: Task<Void, any Error>
    let model: String
    /// The largest message sent or received: the server's default body limit.
    static let maxMessageBytes = 64 << 20

    init(host: String, port: Int, model: String) throws {
        let transport = try Transport(target: .ipv4(address: host, port: port), transportSecurity: .plaintext)
        let client = GRPCClient(transport: transport)
        self.client = client
        running = Task { try await client.runConnections() }
        service = Inference_GRPCInferenceService.Client(wrapping: client)
        self.model = model
    }

    func prepare(_ request: LoadRequest) -> any PreparedRequest {
        let message = Inference_ModelInferRequest.with {
            $0.modelName = model
            $0.inputs = request.inputs.map { input in
                .with { $0.name = input.name; $0.datatype = input.datatype; $0.shape = input.shape.map(Int64.init) }
            }
            $0.outputs = [.with { $0.name = "OUTPUT0" }]
            $0.rawInputContents = request.inputs.map { $0.withUnsafeBytes { Data($0) } }
        }
        return GRPCPreparedRequest(service: service, message: message)
    }

    func close() async {
        client.beginGracefulShutdown()
        _ = try? await running.value
    }
}

/// One ModelInfer request, its message built.
struct GRPCPreparedRequest: PreparedRequest {
    let service: Inference_GRPCInferenceService.Client<GRPCConnection.Transport>
    let message: Inference_ModelInferRequest

    func send() async throws -> LoadResponse {
        do {
            // A seed batch's answer is 27 MB; grpc-swift stops at 4 MiB unless told
            // (its NIO transport reads the request limit for the response too).
            var options = CallOptions.defaults
            options.maxRequestMessageBytes = GRPCConnection.maxMessageBytes
            options.maxResponseMessageBytes = GRPCConnection.maxMessageBytes
            let response = try await service.modelInfer(message, options: options)
            return LoadResponse(status: 200, output: [UInt8](response.rawOutputContents.first ?? Data()), error: nil)
        } catch let error as RPCError {
            return LoadResponse(status: 500, output: [], error: "gRPC \(error.code): \(error.message)")
        }
    }
}
#endif
