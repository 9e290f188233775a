#if Serving
import GRPCCore
import HPS
import GRPCNIOTransportHTTP2Posix
import Glibc
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The KServe v2 gRPC server as a service of a `ServiceGroup`: it listens on
/// `host`:`port` (plaintext HTTP/2) and, on the group's graceful shutdown,
/// stops accepting connections and RPCs (GOAWAY) while the RPCs in flight run
/// to their end; `run()` returns once they have.
package struct GRPCServerService: Service {
    /// The host to listen on: an IP address or a name to resolve, as `--host`.
    package let host: String
    /// The port; 0 picks a free one, reported through `onListening`.
    package let port: Int
    /// The largest request message accepted (larger: RESOURCE_EXHAUSTED).
    package let maxRequestBytes: Int
    /// The HTTP/2 flow-control window of each connection and call (`HPSServer.Options.grpcWindowBytes`).
    package let windowBytes: Int
    /// The services and interceptors the server runs.
    let services: [any RegistrableRPCService]
    let interceptors: [any ServerInterceptor]
    /// Called with the port once the server listens.
    let onListening: @Sendable (Int) async -> Void

    /// A server of `services`, each RPC passing `interceptors` first.
    init(host: String, port: Int, maxRequestBytes: Int, windowBytes: Int, services: [any RegistrableRPCService],
         interceptors: [any ServerInterceptor], onListening: @escaping @Sendable (Int) async -> Void) {
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
        self.windowBytes = windowBytes
        self.services = services
        self.interceptors = interceptors
        self.onListening = onListening
    }

    /// The gRPC listener's own event loops (as many as NIO's shared group,
    /// which the HTTP listener uses): a client flooding the gRPC port with
    /// HTTP/2 frames then holds gRPC's threads, not those that HTTP requests
    /// wait on (docs/hardening.md measures both). Kept for the process's life,
    /// as NIO's shared group is.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)

    /// The most calls open at once on one HTTP/2 connection.
    static let maxConcurrentStreams = 1024

    /// Serves until the group shuts down gracefully (or the task is cancelled).
    /// - Throws: NIO's `IOError` (e.g. EADDRINUSE) when the port cannot be bound.
    package func run() async throws {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = maxRequestBytes
        // The transport's default is no limit: each open call holds a stream's
        // buffers, so one connection may hold at most this many (clients queue
        // the rest, as SETTINGS_MAX_CONCURRENT_STREAMS asks).
        config.http2.maxConcurrentStreams = Self.maxConcurrentStreams
        config.http2.targetWindowSize = windowBytes
        // The only hooks into each accepted connection's and stream's pipeline; see each handler for why.
        config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            HTTP2DecodingResumer.install(on: channel).flatMap { HTTP2ResetFloodGuard.install(on: channel) }
        }
        config.channelDebuggingCallbacks.onAcceptHTTP2Stream = RequestMessageSizeLimit.install(limit: maxRequestBytes)
        let transport = HTTP2ServerTransport.Posix(address: try Self.address(host: host, port: port),
                                                   transportSecurity: .plaintext, config: config,
                                                   eventLoopGroup: Self.eventLoops)
        let server = GRPCServer(transport: transport, services: services, interceptors: interceptors)
        let stopping = Locked(false)
        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { try await server.serve() }
                    // Throws when the transport could not bind; serve() throws the cause too.
                    if let address = try? await transport.listeningAddress, !stopping.withLock({ $0 }) {
                        await onListening(address.ipv4?.port ?? address.ipv6?.port ?? port)
                    }
                }
            } onGracefulShutdown: {
                stopping.withLock { $0 = true }
                // The transport's shutdown, not the server's: a SIGTERM may
                // come before serve() has begun, and grpc-swift-2's GRPCServer,
                // stopped before it serves, refuses to (serve() throws "the
                // server has stopped", which in the KServe bundle would cancel
                // the HTTP listener and drop its requests in flight) while its
                // transport never learns a listening address (the wait above
                // would never end). The transport's shutdown before its
                // listener exists closes the listener as soon as it is bound,
                // so serve() returns; after, it is what the server's does.
                transport.beginGracefulShutdown()
            }
        } catch let error as RuntimeError {
            // A shutdown that reaches the listener while it is being bound
            // ends its first I/O ("I/O on closed channel"): the service was
            // asked to stop and has, which is no failure of the server.
            if stopping.withLock({ $0 }) { return }
            // Unwrap a bind failure so that callers see the same IOError as from the HTTP server.
            var cause: (any Error)? = error.cause
            while let wrapped = cause as? RuntimeError { cause = wrapped.cause }
            if let ioError = cause as? IOError { throw ioError }
            throw error
        }
    }

    /// `host` resolved (an IP address stays as it is) to the address to bind.
    static func address(host: String, port: Int) throws -> GRPCNIOTransportCore.SocketAddress {
        let resolved = try NIOCore.SocketAddress.makeAddressResolvingHost(host, port: port)
        guard let ip = resolved.ipAddress else {
            throw IOError(errnoCode: EINVAL, reason: "--host \(host) is not an IP address or a host name")
        }
        switch resolved.protocol {
        case .inet6: return .ipv6(host: ip, port: port)
        default: return .ipv4(host: ip, port: port)
        }
    }
}
#endif
