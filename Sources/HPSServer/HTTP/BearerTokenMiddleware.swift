import HTTPTypes
package import Hummingbird

/// Refuses requests without `Authorization: Bearer <token>` (401), except the
/// health endpoints, which orchestrators probe without credentials.
package struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The token requests must carry.
    let token: [UInt8]

    /// Requires `token`.
    package init(token: String) { self.token = Array(token.utf8) }

    /// Passes the request on when it carries the token.
    package func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/v2/health/") { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            return .error(.unauthorized("this server needs a token: send the header \"Authorization: Bearer <token>\""))
        }
        guard BearerToken.accepts(header, token: token) else {
            return .error(.unauthorized("the bearer token in the Authorization header is not the server's token"))
        }
        return try await next(request, context)
    }
}
