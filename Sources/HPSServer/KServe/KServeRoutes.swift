import HTTPTypes
import HPS
public import Hummingbird
import NIOCore

/// The KServe v2 REST endpoints that Triton's HTTP clients use: server and
/// model metadata, health, and inference with JSON tensors or Triton's
/// binary tensor data extension.
public struct KServeRoutes: Sendable {
    /// The models, by name.
    public let models: [String: ServedModel]
    /// Where requests are counted.
    public let metrics: ServerMetrics
    /// The largest request body accepted (larger: 413).
    public let maxBodyBytes: Int
    /// Each model's lookups, batched dynamically, by model name.
    public let batchers: [String: LookupBatcher]

    /// The server's name in the server metadata.
    public static let serverName = "swift-hps"
    /// The server's version in the server metadata.
    public static let serverVersion = "0.1.0"

    /// Routes for `models`, whose blocking lookups run on `pool`.
    public init(models: [ServedModel], metrics: ServerMetrics, maxBodyBytes: Int,
                batching: LookupBatcher.Options = LookupBatcher.Options(), pool: LookupThreadPool) {
        self.models = Dictionary(models.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.metrics = metrics
        self.maxBodyBytes = maxBodyBytes
        batchers = self.models.mapValues { LookupBatcher(model: $0, metrics: metrics, pool: pool, options: batching) }
    }

    /// Adds the endpoints to `router`.
    public func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/v2") { _, _ in
            Response.json(.object(JSONObject([
                ("name", .string(Self.serverName)),
                ("version", .string(Self.serverVersion)),
                ("extensions", .array([.string("binary_tensor_data")])),
            ])))
        }
        // Every model is loaded before the server listens, so live means ready.
        router.get("/v2/health/live") { _, _ in Response(status: .ok) }
        router.get("/v2/health/ready") { _, _ in Response(status: .ok) }
        // Triton's repository index: every model, loaded before the server listens.
        router.post("/v2/repository/index") { _, _ in
            Response.json(.array(self.models.keys.sorted().map { name in
                .object(JSONObject([("name", .string(name)), ("version", .string(ServedModel.version)), ("state", "READY")]))
            }))
        }
        for prefix in ["/v2/models/:model", "/v2/models/:model/versions/:version"] {
            router.get(RouterPath(prefix)) { _, context in
                self.respond { () throws(InferenceError) in try self.model(context).metadata() }
            }
            router.get(RouterPath(prefix + "/config")) { _, context in
                self.respond { () throws(InferenceError) in try self.model(context).tritonConfiguration() }
            }
            router.get(RouterPath(prefix + "/ready")) { _, context in
                do throws(InferenceError) {
                    _ = try self.model(context)
                    return Response(status: .ok)
                } catch {
                    return .error(error)
                }
            }
            router.post(RouterPath(prefix + "/infer")) { request, context in
                await self.infer(request, context: context)
            }
        }
    }

    private func respond(_ body: () throws(InferenceError) -> JSONValue) -> Response {
        do throws(InferenceError) { return .json(try body()) } catch { return .error(error) }
    }

    /// The model and version named in the path.
    private func model(_ context: some RequestContext) throws(InferenceError) -> ServedModel {
        let name = context.parameters.get("model") ?? ""
        guard let model = models[name] else {
            throw .unknownModel(name, available: models.keys.sorted())
        }
        if let version = context.parameters.get("version"), version != ServedModel.version {
            throw .unknownVersion(model: name, version: version)
        }
        return model
    }

    private func infer(_ request: Request, context: some RequestContext) async -> Response {
        let start = ContinuousClock.now
        let response: Response
        var label = "unknown"
        do throws(InferenceError) {
            let model = try self.model(context)
            label = model.name
            response = try await infer(request, model: model)
        } catch {
            response = .error(error)
        }
        metrics.recordRequest(model: label, status: response.status.code, duration: ContinuousClock.now - start)
        return response
    }

    private func infer(_ request: Request, model: ServedModel) async throws(InferenceError) -> Response {
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            throw .malformed("request compression (Content-Encoding: \(encoding)) is not supported; send the request uncompressed")
        }
        let body = try await collectBody(request)
        var headerLength: Int? = nil
        if let field = request.headers[.inferenceHeaderContentLength] {
            guard let length = Int(field) else {
                throw .malformed("Inference-Header-Content-Length must be a byte count, not \"\(field)\"")
            }
            headerLength = length
        }
        let inference = try body.withUnsafeReadableBytes { body in
            Result { () throws(InferenceError) -> InferenceRequest in try InferenceRequest.parse(body: body, headerLength: headerLength) }
        }.get()
        let batch = try model.batch(of: inference)
        let batcher = batchers[model.name]!
        let floats = model.outputCount(batch)
        let shape = model.outputShape(batch, floats: floats)
        guard inference.wantsBinary(ServedModel.output) else {
            let vectors = try await batcher.lookup(batch)
            return InferenceResponse.json(model: model, request: inference, shape: shape, vectors: vectors)
        }
        var response = InferenceResponse.binary(model: model, request: inference, shape: shape, floats: floats)
        try await batcher.lookup(batch, appendingTo: &response.buffer)
        return response.http()
    }

    private func collectBody(_ request: Request) async throws(InferenceError) -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBodyBytes {
            throw .bodyTooLarge(limit: maxBodyBytes)
        }
        do {
            return try await request.body.collect(upTo: maxBodyBytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw .bodyTooLarge(limit: maxBodyBytes)
        } catch {
            throw .malformed("the request body could not be read: \(error)")
        }
    }
}
