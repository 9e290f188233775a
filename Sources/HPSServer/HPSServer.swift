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
/// Each model is served from the sessions the hierarchy gives it: from its
/// sessions on the GPUs of its `deployed_device_list` when it has any (the
/// hierarchy was built with a GPU cache factory and the model has
/// `gpucache: true`), requests spread over them, else from its session on
/// the CPU. Lookups that may block (a network, a disk or a GPU) run on the
/// server's `LookupThreadPool`.
///
/// ```swift
/// let hierarchy = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: "hps.json"))
/// try await HPSServer(parameterServer: hierarchy).run(logger: Logger(label: "hps"))
/// ```
///
/// `run()` shuts down gracefully on SIGTERM and SIGINT: the listeners close,
/// so new connections are refused, and requests in flight are answered; then
/// the lookup pool and the hierarchy's background work stop.
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
        /// The HTTP/2 flow-control window the gRPC listener grants each
        /// connection and each call, in bytes (65,535 to 2,147,483,647). The
        /// transport's default, 65,535, makes a request larger than that wait
        /// for a window update every 64 KB, each a trip from the event loop
        /// through the call's reader and back (a seed-predict request is
        /// 426 KB). A connection's window is as large as a call's, so one
        /// connection buffers at most this many unread request bytes, however
        /// many calls it opens.
        public var grpcWindowBytes = 1 << 20
        /// How long an HTTP client may take to send each whole request (from
        /// the connection's start or the last response to the request's head,
        /// and from its head to its end) before its connection is closed: slow
        /// clients and idle keep-alive connections are held at most this long.
        public var requestReadTimeout: Duration = .seconds(60)
        /// How concurrent requests' lookups are merged, and how many may wait.
        public var batching = LookupBatcher.Options()
        /// Threads of the pool that runs the lookups which may block (Redis,
        /// RocksDB, mapped files, GPUs) and large CPU lookups.
        public var lookupThreads = availableCores
        /// Whether models may be loaded and unloaded while serving (Triton's `--model-control-mode`).
        public var modelControl = ModelRepository.ControlMode.none
        /// The configuration file a model load reads (`hps serve --config`);
        /// nil when the hierarchy was configured in code.
        public var configurationPath: String?

        /// The defaults.
        public init() {}
    }

    /// The models' tiers and sessions.
    public let parameterServer: HierarchicalParameterServer
    /// Where and how the server listens.
    public let options: Options
    /// The KServe v2 endpoints.
    package let routes: KServeRoutes
    /// The models served, loaded and unloaded while serving.
    package var repository: ModelRepository { routes.repository }
    /// The metrics.
    package let metrics: ServerMetrics
    /// The threads the lookups that may block run on.
    package let lookupPool: LookupThreadPool
    /// Background work that writes into the hierarchy (the Kafka consumers).
    public let updates: [any BackgroundWork]

    /// A server for every model of `parameterServer` (from its GPU sessions
    /// when it has any, else from its CPU session), and for
    /// `predictionModels` (lookups → dense head, on the CPU or a GPU) under
    /// their names.
    /// - Parameter updates: further background work that writes into the
    ///   hierarchy (the Kafka consumers), run and stopped with the rest.
    /// - Throws: `ServerError` of code `modelUnavailable` when a model of
    ///   `parameterServer` is unloaded while the server is made.
    public init(parameterServer: HierarchicalParameterServer, options: Options = Options(),
                predictionModels: [(name: String, model: any Predictor)] = [],
                updates: [any BackgroundWork] = []) throws {
        self.parameterServer = parameterServer
        self.updates = updates
        self.options = options
        var served: [ServedModel] = []
        for model in parameterServer.models {
            let devices = parameterServer.deviceSessions(model: model.name)
            do throws(LookupError) {
                served.append(ServedModel(sessions: devices.isEmpty ? [try parameterServer.session(model: model.name)] : devices))
            } catch {
                throw ServerError(code: .modelUnavailable, message: error.description, cause: error)
            }
        }
        served += predictionModels.map { ServedModel(prediction: $0.model, name: $0.name) }
        metrics = ServerMetrics(sessions: served.flatMap(\.sessions), modelNames: predictionModels.map(\.name),
                                updates: updates.compactMap { $0 as? any UpdateCounting },
                                stores: parameterServer.stores)
        lookupPool = LookupThreadPool(threads: options.lookupThreads)
        let repository = ModelRepository(parameterServer: parameterServer, models: served, mode: options.modelControl,
                                         configurationPath: options.configurationPath, metrics: metrics, pool: lookupPool,
                                         batching: options.batching, logger: Logger(label: "hps.repository"))
        routes = KServeRoutes(repository: repository, metrics: metrics, maxBodyBytes: options.maxBodyBytes)
    }

    /// The devices each model is served from (nil: the CPU), by model name.
    public var devices: [String: [Int?]] { routes.models.mapValues(\.devices) }

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

    /// The server as services of a `ServiceGroup`, in the order they start:
    /// the hierarchy's background work (cache refreshes and inserts, Redis
    /// connections), the lookups (their thread pool and the batchers'
    /// queues), the KServe v2 HTTP and gRPC listeners, the metrics listener.
    /// A graceful shutdown of the group stops them in the reverse order: the
    /// listeners close and answer the requests in flight, then the lookup pool
    /// stops once its lookups have finished, then the background work.
    /// - Parameter onListening: called with ("http", "grpc" or "metrics", host, port) once each port listens.
    public func services(logger: Logger,
                         onListening: @escaping @Sendable (String, String, Int) -> Void = { _, _, _ in }) -> [any Service] {
        let host = options.host
        func listening(_ what: String) -> @Sendable (any Channel) async -> Void {
            { channel in onListening(what, host, channel.localAddress?.port ?? 0) }
        }
        let readLimit = TimeAmount.nanoseconds(Int64(options.requestReadTimeout.nanoseconds))
        let http = Application(router: router(),
                               server: .http1(configuration: .init(additionalChannelHandlers: [RequestReadDeadline(limit: readLimit)])),
                               configuration: ApplicationConfiguration(address: .hostname(host, port: options.httpPort),
                                                                       serverName: KServeRoutes.serverName),
                               onServerRunning: listening("http"), logger: logger)
        let metricsApp = Application(router: metricsRouter(),
                                     configuration: ApplicationConfiguration(address: .hostname(host, port: options.metricsPort),
                                                                             serverName: KServeRoutes.serverName),
                                     onServerRunning: listening("metrics"), logger: logger)
        let background: [any Service] = (parameterServer.backgroundWork(logger: logger) + updates).map { BackgroundWorkService($0, pool: lookupPool) }
        let lookups = LookupService(pool: lookupPool, repository: repository)
        #if Serving
        // One bundle, so that SIGTERM closes both KServe listeners at once.
        let kserve = ServiceBundle([http, grpcService(onListening: { port in onListening("grpc", host, port) })])
        return background + [lookups, kserve, metricsApp]
        #else
        return background + [lookups, http, metricsApp]
        #endif
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    /// - Parameter onListening: called with ("http", "grpc" or "metrics", host, port) once each port listens.
    /// - Throws: `ServerError` of code `addressInUse` when a port is taken;
    ///   what a service throws otherwise.
    public func run(logger: Logger, onListening: @escaping @Sendable (String, String, Int) -> Void = { _, _, _ in }) async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services(logger: logger, onListening: onListening),
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            let ports = [options.httpPort, options.grpcPort, options.metricsPort].map(String.init).joined(separator: " or ")
            throw ServerError(
                code: .addressInUse,
                message: "cannot listen on \(options.host) port \(ports): another process uses it; choose free ports with --http-port, --grpc-port and --metrics-port",
                cause: error)
        }
    }
}

/// Why the server could not be made or could not start: what kind of
/// problem it is (`code`), one sentence that says what to fix (`message`),
/// and the error underneath (`cause`), in the shape of grpc-swift-2's
/// `RPCError` and of the library's `HPSError`.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem stopped the server.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// Another process listens on one of the ports; `cause` is the socket's error.
        public static let addressInUse = Code("address in use")
        /// A model of the parameter server was unloaded while the server was
        /// made; `cause` is the `LookupError`.
        public static let modelUnavailable = Code("model unavailable")

        /// The code in words.
        public var description: String { name }
    }

    /// What kind of problem it is.
    public var code: Code
    /// One sentence a user can act on.
    public var message: String
    /// The error that caused this one.
    public var cause: (any Error)?

    /// An error of `code` saying `message`.
    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The message.
    public var description: String { message }
}
