import HTTPTypes
import HPS
package import Hummingbird
import NIOCore

/// The KServe v2 REST endpoints that Triton's HTTP clients use: server and
/// model metadata, health, inference with JSON tensors or Triton's binary
/// tensor data extension, and the model repository extension (index, load,
/// unload).
package struct KServeRoutes: Sendable {
    /// The models served, and their loads and unloads.
    package let repository: ModelRepository
    /// Where requests are counted.
    package let metrics: ServerMetrics
    /// The largest request body accepted (larger: 413).
    package let maxBodyBytes: Int

    /// The server's name in the server metadata.
    package static let serverName = "swift-hps"
    /// The server's version in the server metadata.
    package static let serverVersion = "0.1.0"

    /// Routes for the models of `repository`.
    package init(repository: ModelRepository, metrics: ServerMetrics, maxBodyBytes: Int) {
        self.repository = repository
        self.metrics = metrics
        self.maxBodyBytes = maxBodyBytes
    }

    /// The models served now, by name.
    package var models: [String: ServedModel] { repository.models }

    /// Each model's batcher now, by name.
    package var batchers: [String: LookupBatcher] { repository.batchers }

    /// Adds the endpoints to `router`.
    package func add<Context: RequestContext>(to router: Router<Context>) {
        router.get("/v2") { _, _ in
            Response.json(.object(JSONObject([
                ("name", .string(Self.serverName)),
                ("version", .string(Self.serverVersion)),
                ("extensions", .array([.string("binary_tensor_data"), .string("model_repository")])),
            ])))
        }
        // Every model of the start is loaded before the server listens, so live means ready.
        router.get("/v2/health/live") { _, _ in Response(status: .ok) }
        router.get("/v2/health/ready") { _, _ in Response(status: .ok) }
        // Triton's repository index: the configuration file's models and those served, with their states.
        router.post("/v2/repository/index") { request, _ in
            let ready: Bool
            do throws(InferenceError) {
                ready = try Self.readyParameter(try await self.collectBody(request))
            } catch {
                return Response.error(error)
            }
            return Response.json(.array(self.repository.index(ready: ready).map { entry in
                var members: [(String, JSONValue)] = [("name", .string(entry.name))]
                if !entry.version.isEmpty { members.append(("version", .string(entry.version))) }
                if !entry.state.isEmpty { members.append(("state", .string(entry.state))) }
                if !entry.reason.isEmpty { members.append(("reason", .string(entry.reason))) }
                return .object(JSONObject(members))
            }))
        }
        router.post("/v2/repository/models/:model/load") { request, context in
            let name = context.parameters.get("model") ?? ""
            do throws(InferenceError) {
                let body = try await self.collectBody(request)
                try await self.repository.load(name, configuration: try Self.configParameter(body))
                return Response(status: .ok)
            } catch {
                return .error(error)
            }
        }
        router.post("/v2/repository/models/:model/unload") { _, context in
            do throws(InferenceError) {
                try await self.repository.unload(context.parameters.get("model") ?? "")
                return Response(status: .ok)
            } catch {
                return .error(error)
            }
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

    /// The index request's `ready` member (false for an empty body): whether
    /// to list only the models that are served.
    /// - Throws: `InferenceError.malformed` for a body that is not a JSON object or a `ready` that is not a boolean.
    static func readyParameter(_ body: ByteBuffer) throws(InferenceError) -> Bool {
        guard let document = try jsonObject(body, of: "repository index") else { return false }
        guard let ready = document["ready"] else { return false }
        guard case .bool(let value) = ready else {
            throw .malformed("the repository index request's ready must be true or false")
        }
        return value
    }

    /// The `config` parameter of a load request's body
    /// (`{"parameters": {"config": "<the model's entry as JSON>"}}`, as
    /// tritonclient's `load_model(config=)` sends it), nil when absent.
    static func configParameter(_ body: ByteBuffer) throws(InferenceError) -> String? {
        guard let config = try jsonObject(body, of: "load")?["parameters"]?["config"] else { return nil }
        guard let text = config.stringValue else {
            throw .malformed("the load request's parameters.config must be a string holding the model's entry as JSON")
        }
        return text
    }

    /// A repository request's body as a JSON object; nil for an empty body.
    /// - Throws: `InferenceError.malformed` naming the request when the body is not a JSON object.
    private static func jsonObject(_ body: ByteBuffer, of request: String) throws(InferenceError) -> JSONValue? {
        guard body.readableBytes > 0 else { return nil }
        let document: JSONValue
        do throws(JSONSyntaxError) {
            document = try JSONValue.parse(String(buffer: body))
        } catch {
            throw .malformed("the \(request) request's body is not JSON: \(error)")
        }
        guard case .object = document else {
            throw .malformed("the \(request) request's body must be a JSON object")
        }
        return document
    }

    private func respond(_ body: () throws(InferenceError) -> JSONValue) -> Response {
        do throws(InferenceError) { return .json(try body()) } catch { return .error(error) }
    }

    /// The model and version named in the path.
    private func model(_ context: some RequestContext) throws(InferenceError) -> ServedModel {
        try repository.model(context.parameters.get("model") ?? "", version: context.parameters.get("version"))
    }

    private func infer(_ request: Request, context: some RequestContext) async -> Response {
        let start = ContinuousClock.now
        let response: Response
        var label = "unknown"
        do throws(InferenceError) {
            let name = context.parameters.get("model") ?? ""
            response = try await repository.withModel(name, version: context.parameters.get("version")) { (model, batcher) throws(InferenceError) in
                label = model.name
                return try await infer(request, model: model, batcher: batcher)
            }
        } catch {
            response = .error(error)
        }
        metrics.recordRequest(model: label, status: response.status.code, duration: ContinuousClock.now - start)
        return response
    }

    private func infer(_ request: Request, model: ServedModel, batcher: LookupBatcher) async throws(InferenceError) -> Response {
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            throw .malformed("request compression (Content-Encoding: \(encoding)) is not supported; send the request uncompressed")
        }
        let receiving = ContinuousClock.now
        let body = try await collectBody(request)
        metrics.recordReceive(model: model.name, duration: ContinuousClock.now - receiving)
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

    func collectBody(_ request: Request) async throws(InferenceError) -> ByteBuffer {
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
