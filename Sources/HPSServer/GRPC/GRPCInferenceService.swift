#if Serving
import FoundationEssentials
package import GRPCCore
import HPS
import HTTPTypes
import NIOCore
import SwiftProtobuf

/// Triton's KServe v2 gRPC service, `inference.GRPCInferenceService`, over the
/// same models, checks, messages and metrics as the HTTP endpoints.
///
/// ModelInfer takes its inputs from `raw_input_contents` (as tritonclient.grpc
/// sends them) or from typed `contents`, and answers `OUTPUT0` in
/// `raw_output_contents` (little-endian FP32). ModelStreamInfer answers each
/// request of the stream in turn, a refused one with its `error_message`.
/// The service's other RPCs are answered by `UnimplementedTritonRPCs`.
///
/// Each ModelInfer is counted in the same metrics as an HTTP inference
/// (requests, failures by the HTTP status of the error, durations, keys, tier hits).
package struct GRPCInferenceService: Inference_GRPCInferenceService.SimpleServiceProtocol {
    /// The models, each with its batcher (lookups batched with those of
    /// concurrent requests over either protocol, counted in the metrics).
    package let repository: ModelRepository
    /// Where requests are counted.
    package let metrics: ServerMetrics

    /// Serves the models of `repository` (the HTTP routes' models and batchers), counting in `metrics`.
    package init(repository: ModelRepository, metrics: ServerMetrics) {
        self.repository = repository
        self.metrics = metrics
    }

    // Every model of the start is loaded before the server listens, so live means ready.

    /// Always live once listening.
    package func serverLive(request: Inference_ServerLiveRequest, context: ServerContext) async throws -> Inference_ServerLiveResponse {
        .with { $0.live = true }
    }

    /// Always ready once listening.
    package func serverReady(request: Inference_ServerReadyRequest, context: ServerContext) async throws -> Inference_ServerReadyResponse {
        .with { $0.ready = true }
    }

    /// Ready when the model (and version, if given) is served; an unknown one is
    /// not ready rather than an error, as tritonclient's `is_model_ready` expects.
    package func modelReady(request: Inference_ModelReadyRequest, context: ServerContext) async throws -> Inference_ModelReadyResponse {
        let ready = (try? model(request.name, version: request.version)) != nil
        return .with { $0.ready = ready }
    }

    /// The server's name and version.
    package func serverMetadata(request: Inference_ServerMetadataRequest, context: ServerContext) async throws -> Inference_ServerMetadataResponse {
        .with {
            $0.name = KServeRoutes.serverName
            $0.version = KServeRoutes.serverVersion
        }
    }

    /// The model's metadata, the same as over HTTP.
    /// - Throws: `InferenceError.unknownModel` or `.unknownVersion` (NOT_FOUND).
    package func modelMetadata(request: Inference_ModelMetadataRequest, context: ServerContext) async throws -> Inference_ModelMetadataResponse {
        Inference_ModelMetadataResponse(kserve: try model(request.name, version: request.version).metadata())
    }

    /// The configuration file's models and those served, with their states (`ModelRepository.index`).
    package func repositoryIndex(request: Inference_RepositoryIndexRequest, context: ServerContext) async throws -> Inference_RepositoryIndexResponse {
        .with {
            $0.models = repository.index(ready: request.ready).map { entry in
                .with {
                    $0.name = entry.name
                    $0.version = entry.version
                    $0.state = entry.state
                    $0.reason = entry.reason
                }
            }
        }
    }

    /// One inference.
    /// - Throws: an `InferenceError` (its gRPC code and message) when the request is refused.
    package func modelInfer(request: Inference_ModelInferRequest, context: ServerContext) async throws -> Inference_ModelInferResponse {
        try await infer(request)
    }

    /// Answers each request of the stream in turn; a refused request gets its
    /// `error_message` and the stream goes on.
    package func modelStreamInfer(request: RPCAsyncSequence<Inference_ModelInferRequest, any Error>,
                                 response: RPCWriter<Inference_ModelStreamInferResponse>,
                                 context: ServerContext) async throws {
        for try await message in request {
            let answer: Inference_ModelStreamInferResponse
            do throws(InferenceError) {
                let result = try await infer(message)
                answer = .with { $0.inferResponse = result }
            } catch {
                answer = .with { $0.errorMessage = error.description }
            }
            try await response.write(answer)
        }
    }

    /// Checks, looks up and encodes one request, counting it in the metrics.
    func infer(_ request: Inference_ModelInferRequest) async throws(InferenceError) -> Inference_ModelInferResponse {
        let start = ContinuousClock.now
        var label = "unknown"
        do throws(InferenceError) {
            let response = try await repository.withModel(request.modelName, version: request.modelVersion) {
                (model, batcher) throws(InferenceError) -> Inference_ModelInferResponse in
                label = model.name
                let inference = try InferenceRequest(grpc: request)
                let output = try await model.infer(inference, batcher: batcher)
                return Inference_ModelInferResponse(model: model, request: inference, output: output)
            }
            metrics.recordRequest(model: label, status: 200, duration: ContinuousClock.now - start)
            return response
        } catch {
            metrics.recordRequest(model: label, status: error.status.code, duration: ContinuousClock.now - start)
            throw error
        }
    }

    /// The model of that name and version ("" or "1").
    func model(_ name: String, version: String) throws(InferenceError) -> ServedModel {
        try repository.model(name, version: version)
    }
}

extension Inference_ModelInferResponse {
    /// `OUTPUT0` as FP32 in `raw_output_contents`, as Triton answers tritonclient.grpc.
    init(model: ServedModel, request: InferenceRequest, output: InferenceOutput) {
        self.init()
        modelName = model.name
        modelVersion = ServedModel.version
        if let id = request.id { self.id = id }
        outputs = [.with {
            $0.name = ServedModel.output
            $0.datatype = TensorDatatype.fp32.rawValue
            $0.shape = output.shape.map(Int64.init)
        }]
        // Already little-endian FP32, as raw_output_contents holds it.
        rawOutputContents = [Data(output.floats.readableBytesView)]
    }
}

extension Inference_ModelMetadataResponse {
    /// The KServe v2 model metadata (`ServedModel.metadata()`, as served over
    /// HTTP) as the gRPC message, so both protocols describe a model alike.
    init(kserve metadata: JSONValue) {
        func tensors(_ value: JSONValue?) -> [TensorMetadata] {
            (value?.arrayValue ?? []).map { tensor in
                .with {
                    $0.name = tensor["name"]?.stringValue ?? ""
                    $0.datatype = tensor["datatype"]?.stringValue ?? ""
                    $0.shape = (tensor["shape"]?.arrayValue ?? []).compactMap {
                        if case let .integer(dimension) = $0 { dimension } else { nil }
                    }
                }
            }
        }
        self.init()
        name = metadata["name"]?.stringValue ?? ""
        versions = (metadata["versions"]?.arrayValue ?? []).compactMap(\.stringValue)
        platform = metadata["platform"]?.stringValue ?? ""
        inputs = tensors(metadata["inputs"])
        outputs = tensors(metadata["outputs"])
    }
}
#endif
