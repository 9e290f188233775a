#if Serving
package import GRPCCore

/// Refuses RPCs without the metadata `authorization: Bearer <token>`
/// (UNAUTHENTICATED), except ServerLive and ServerReady, which orchestrators
/// probe without credentials: the gRPC side of `BearerTokenMiddleware`.
package struct BearerTokenInterceptor: ServerInterceptor {
    /// The token RPCs must carry.
    let token: [UInt8]
    /// The methods that need no token.
    static let openMethods: Set<String> = ["ServerLive", "ServerReady"]

    /// Requires `token`.
    package init(token: String) { self.token = Array(token.utf8) }

    /// Passes the RPC on when it carries the token.
    package func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if Self.openMethods.contains(context.descriptor.method) { return try await next(request, context) }
        guard let value = request.metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw InferenceError.unauthorized("this server needs a token: send the metadata \"authorization: Bearer <token>\"")
        }
        guard BearerToken.accepts(value, token: token) else {
            throw InferenceError.unauthorized("the bearer token in the authorization metadata is not the server's token")
        }
        return try await next(request, context)
    }
}
#endif
