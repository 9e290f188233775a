#if Serving
import HPS
@testable import HPSServer
import ServiceLifecycleTestKit
import Testing

struct GRPCServerServiceTests {
    /// A SIGTERM can come while the server starts, before the gRPC server
    /// serves: grpc-swift-2's `serve()` then throws "the server has stopped".
    /// That must not be an error of the service: in the KServe bundle an
    /// error cancels the HTTP listener beside it and drops the HTTP requests
    /// in flight.
    @Test("a graceful shutdown that comes before the gRPC server serves ends the service without an error",
          .timeLimit(.minutes(1)))
    func shutdownBeforeServing() async throws {
        let listened = Locked<[Int]>([])
        try await testGracefulShutdown { trigger in
            trigger.triggerGracefulShutdown()
            let service = GRPCServerService(host: "127.0.0.1", port: 0, maxRequestBytes: 1 << 20,
                                            windowBytes: HPSServer.Options().grpcWindowBytes, services: [],
                                            interceptors: [], onListening: { port in listened.withLock { $0.append(port) } })
            try await service.run()
        }
        #expect(listened.withLock { $0 }.isEmpty, "a server that never served never listened")
    }
}
#endif
