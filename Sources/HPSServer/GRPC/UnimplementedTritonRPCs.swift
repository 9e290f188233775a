#if Serving
package import GRPCCore

/// The RPCs of Triton's `inference.GRPCInferenceService` that swift-hps does
/// not serve (model configuration and statistics, shared memory, tracing,
/// logging): each answers UNIMPLEMENTED with a sentence that
/// says so and, where HTTP serves it, where to ask instead, rather than gRPC's
/// generic "Requested RPC isn't implemented". Their messages are never decoded,
/// so their types need not be generated.
package struct UnimplementedTritonRPCs: RegistrableRPCService {
    /// Each method with its explanation.
    static let methods: [(name: String, message: String)] = [
        ("ModelConfig", "swift-hps does not serve ModelConfig over gRPC; GET /v2/models/<model>/config on the HTTP port gives the configuration"),
        ("ModelStatistics", "swift-hps does not serve ModelStatistics; the metrics port's /metrics has requests, latencies, keys and tier hits per model"),
        ("SystemSharedMemoryStatus", "swift-hps does not support system shared memory; send inputs in raw_input_contents"),
        ("SystemSharedMemoryRegister", "swift-hps does not support system shared memory; send inputs in raw_input_contents"),
        ("SystemSharedMemoryUnregister", "swift-hps does not support system shared memory; send inputs in raw_input_contents"),
        ("CudaSharedMemoryStatus", "swift-hps does not support CUDA shared memory; send inputs in raw_input_contents"),
        ("CudaSharedMemoryRegister", "swift-hps does not support CUDA shared memory; send inputs in raw_input_contents"),
        ("CudaSharedMemoryUnregister", "swift-hps does not support CUDA shared memory; send inputs in raw_input_contents"),
        ("TraceSetting", "swift-hps does not support Triton's tracing settings"),
        ("LogSettings", "swift-hps does not support changing log settings at run time"),
    ]

    /// The service.
    package init() {}

    /// Registers one handler per method, each refusing the RPC.
    package func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for (name, message) in Self.methods {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "inference.GRPCInferenceService", method: name),
                deserializer: UndecodedMessage(), serializer: UndecodedMessage()
            ) { (_: StreamingServerRequest<[UInt8]>, _) -> StreamingServerResponse<[UInt8]> in
                StreamingServerResponse(error: RPCError(code: .unimplemented, message: message))
            }
        }
    }
}

/// A message kept as its bytes, for RPCs refused without reading them.
private struct UndecodedMessage: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}
#endif
