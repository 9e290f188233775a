#if Serving
package import GRPCCore

extension HPSServer {
    /// The KServe v2 gRPC service of the models, and Triton's other RPCs refused.
    package func grpcServices() -> [any RegistrableRPCService] {
        [GRPCInferenceService(repository: repository, metrics: metrics), RepositoryControlRPCs(repository: repository),
         UnimplementedTritonRPCs()]
    }

    /// The interceptors every RPC passes: the token check when a token is set.
    package func grpcInterceptors() -> [any ServerInterceptor] {
        options.token.map { [BearerTokenInterceptor(token: $0)] } ?? []
    }

    /// The gRPC server on `options.host`:`options.grpcPort`, as a service of a `ServiceGroup`.
    /// - Parameter onListening: called with the port once it listens.
    package func grpcService(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> GRPCServerService {
        GRPCServerService(host: options.host, port: options.grpcPort, maxRequestBytes: options.maxBodyBytes,
                          windowBytes: options.grpcWindowBytes,
                          services: grpcServices(), interceptors: grpcInterceptors(), onListening: onListening)
    }
}
#endif
