import HTTPTypes
package import Hummingbird

/// Gives the router's own errors (no such endpoint, a method not allowed) the
/// protocol's body, `{"error": "..."}`, as every other error has.
package struct ProtocolErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The middleware.
    package init() {}

    /// Passes the request on and rewrites a thrown HTTP error.
    package func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let message = error.status == .notFound
                ? "there is no endpoint \(request.method) \(request.uri.path); the KServe v2 endpoints are GET /v2, /v2/health/live, /v2/health/ready, /v2/models/<model>, /v2/models/<model>/ready and POST /v2/models/<model>/infer"
                : "\(error.status.code) \(error.status.reasonPhrase) for \(request.method) \(request.uri.path)"
            return .error(message, status: error.status)
        }
    }
}
