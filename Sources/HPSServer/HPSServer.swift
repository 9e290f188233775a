import HTTPTypes
public import HPS
public import Hummingbird
public import Logging
import Glibc
import NIOCore
public import ServiceLifecycle
import UnixSignals

/// Serves the models of a `HierarchicalParameterServer` over the KServe v2
/// HTTP protocol (as Triton does, with its binary tensor data extension), over
/// its gRPC protocol (Triton's `inference.GRPCInferenceService`), and
/// Prometheus metrics on a third port.
///
/// `run()` shuts down gracefully on SIGTERM and SIGINT: the listeners close,
/// so new connections are refused, and requests in flight are answered.
public struct HPSServer: Sendable {
    /// Where and how the server listens.
    public struct Options: Sendable {
        /// The address to bind; loopback unless given.
        public var host = "127.0.0.1"
        /// The KServe v2 HTTP port (Triton's default, 8000; 0 picks a free one).
        public var httpPort = 8000
        /// The KServe v2 gRPC port (Triton's default, 8001; 0 picks a free one).
        public var grpcPort = 8001
        /// The Prometheus metrics port (Triton's default, 8002; 0 picks a free one).
        public var metricsPort = 8002
        /// When set, every endpoint but health needs `Authorization: Bearer <token>`
        /// (over gRPC, every RPC but ServerLive and ServerReady the metadata `authorization: Bearer <token>`).
        public var token: String?
        /// The largest request body (HTTP) or request message (gRPC) accepted.
        public var maxBodyBytes = 64 << 20
        /// How concurrent requests' lookups are merged.
        public var batching = LookupBatcher.Options()

        /// The defaults.
        public init() {}
    }

    /// The models' tiers and sessions.
    public let parameterServer: HierarchicalParameterServer
    /// Where and how the server listens.
    public let options: Options
    /// The KServe v2 endpoints.
    public let routes: KServeRoutes
    /// The metrics.
    public let metrics: ServerMetrics

    /// A server for every model of `parameterServer`, and for `predictionModels`
    /// (lookups → dense layer over its sessions) under their names.
    public init(parameterServer: HierarchicalParameterServer, options: Options = Options(),
                predictionModels: [(name: String, model: PredictionModel)] = []) throws(LookupError) {
        self.parameterServer = parameterServer
        self.options = options
        var sessions: [LookupSession] = []
        for model in parameterServer.configuration.models {
            sessions.append(try parameterServer.session(model: model.name))
        }
        let tierNames = [parameterServer.volatileStore?.kind, parameterServer.persistentStore?.kind].compactMap { $0 }
        metrics = ServerMetrics(sessions: sessions, tierNames: tierNames, modelNames: predictionModels.map(\.name))
        let served = sessions.map(ServedModel.init) + predictionModels.map { ServedModel(prediction: $0.model, name: $0.name) }
        routes = KServeRoutes(models: served, metrics: metrics, maxBodyBytes: options.maxBodyBytes, batching: options.batching)
    }

    /// The router of the KServe v2 endpoints, with the token check when a token is set.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ProtocolErrorMiddleware())
        if let token = options.token { router.add(middleware: BearerTokenMiddleware(token: token)) }
        routes.add(to: router)
        return router
    }

    /// The router of the metrics port: `GET /metrics`.
    public func metricsRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let metrics = self.metrics
        router.get("/metrics") { _, _ in
            var buffer = ByteBuffer()
            buffer.writeBytes(metrics.exposition())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: buffer))
        }
        return router
    }

    /// The KServe v2 HTTP and gRPC servers and the metrics HTTP server, as
    /// services of a `ServiceGroup`; a graceful shutdown of the group closes the
    /// listeners and answers the requests in flight.
    /// - Parameter onListening: called with ("http", "grpc" or "metrics", host, port) once each port listens.
    public func services(logger: Logger,
                         onListening: @escaping @Sendable (String, String, Int) -> Void = { _, _, _ in }) -> [any Service] {
        let host = options.host
        func listening(_ what: String) -> @Sendable (any Channel) async -> Void {
            { channel in onListening(what, host, channel.localAddress?.port ?? 0) }
        }
        let http = Application(router: router(),
                               configuration: ApplicationConfiguration(address: .hostname(host, port: options.httpPort),
                                                                       serverName: KServeRoutes.serverName),
                               onServerRunning: listening("http"), logger: logger)
        let metricsApp = Application(router: metricsRouter(),
                                     configuration: ApplicationConfiguration(address: .hostname(host, port: options.metricsPort),
                                                                             serverName: KServeRoutes.serverName),
                                     onServerRunning: listening("metrics"), logger: logger)
        #if Serving
        // One bundle, so that SIGTERM closes both KServe listeners at once.
        let kserve = ServiceBundle([http, grpcService(onListening: { port in onListening("grpc", host, port) })])
        return [kserve, metricsApp]
        #else
        return [http, metricsApp]
        #endif
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    /// - Parameter onListening: called with ("http", "grpc" or "metrics", host, port) once each port listens.
    /// - Throws: `ServerError.addressInUse` when a port is taken.
    public func run(logger: Logger, onListening: @escaping @Sendable (String, String, Int) -> Void = { _, _, _ in }) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services(logger: logger, onListening: onListening),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ServerError.addressInUse(host: options.host, ports: [options.httpPort, options.grpcPort, options.metricsPort])
        }
    }
}

/// Why the server could not start.
public enum ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process listens on one of the ports.
    case addressInUse(host: String, ports: [Int])

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .addressInUse(host, ports):
            "cannot listen on \(host) port \(ports.map(String.init).joined(separator: " or ")): another process uses it; choose free ports with --http-port, --grpc-port and --metrics-port"
        }
    }
}
