#if Serving
public import GRPCCore

/// Refuses RPCs without the metadata `authorization: Bearer <token>`
/// (UNAUTHENTICATED), except ServerLive and ServerReady, which orchestrators
/// probe without credentials: the gRPC side of `BearerTokenMiddleware`.
public struct BearerTokenInterceptor: ServerInterceptor {
    /// The token RPCs must carry.
    let token: [UInt8]
    /// The methods that need no token.
    static let openMethods: Set<String> = ["ServerLive", "ServerReady"]

    /// Requires `token`.
    public init(token: String) { self.token = Array(token.utf8) }

    /// Passes the RPC on when it carries the token.
    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if Self.openMethods.contains(context.descriptor.method) { return try await next(request, context) }
        guard let value = request.metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw InferenceError.unauthorized("this server needs a token: send the metadata \"authorization: Bearer <token>\"")
        }
        let prefix = "Bearer "
        guard value.hasPrefix(prefix), Self.constantTimeEqual(Array(value.utf8.dropFirst(prefix.utf8.count)), token) else {
            throw InferenceError.unauthorized("the bearer token in the authorization metadata is not the server's token")
        }
        return try await next(request, context)
    }

    /// Compares without returning early, so timing does not reveal a prefix.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
#endif
