import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import HPS
import HPSServer
import Logging
import ServiceLifecycle
import SwiftProtobuf
import Testing

/// The KServe v2 gRPC service on a real port, called by grpc-swift's client.
struct GRPCInferenceServiceTests {
    typealias Client = Inference_GRPCInferenceService.Client<HTTP2ClientTransport.Posix>

    /// Runs the fixture's gRPC server on a free port and `body` with a client of it,
    /// then shuts the server down gracefully.
    static func withServer<Value: Sendable>(
        _ fixture: ServerFixture,
        _ body: @Sendable (Client, _ port: Int, _ group: ServiceGroup) async throws -> Value
    ) async throws -> Value {
        let logger = Logger(label: "test")
        let (ports, listening) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [fixture.server.grpcService { port in listening.yield(port) }], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var port = 0
            for await listeningPort in ports {
                port = listeningPort
                break
            }
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port),
                                                           transportSecurity: .plaintext)
            let value = try await withGRPCClient(transport: transport) { client in
                try await body(Client(wrapping: client), port, group)
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return value
        }
    }

    static func options(_ change: (inout HPSServer.Options) -> Void = { _ in }) -> HPSServer.Options {
        var options = HPSServer.Options()
        options.grpcPort = 0
        change(&options)
        return options
    }

    /// A tensor of raw little-endian contents.
    static func rawTensor(_ name: String, _ datatype: String, _ values: [Int64]) -> (Inference_ModelInferRequest.InferInputTensor, Data) {
        let tensor = Inference_ModelInferRequest.InferInputTensor.with {
            $0.name = name
            $0.datatype = datatype
            $0.shape = [Int64(values.count)]
        }
        var bytes: [UInt8] = []
        for value in values {
            if datatype == "INT64" {
                withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
            } else {
                withUnsafeBytes(of: Int32(truncatingIfNeeded: value).littleEndian) { bytes += $0 }
            }
        }
        return (tensor, Data(bytes))
    }

    /// KEYS and NUMKEYS in raw_input_contents, as tritonclient.grpc sends them.
    static func request(model: String, keys: [Int64], numKeys: [Int64], keysType: String = "INT64") -> Inference_ModelInferRequest {
        let (keysTensor, keysBytes) = rawTensor("KEYS", keysType, keys)
        let (numKeysTensor, numKeysBytes) = rawTensor("NUMKEYS", "INT32", numKeys)
        return .with {
            $0.modelName = model
            $0.inputs = [keysTensor, numKeysTensor]
            $0.rawInputContents = [keysBytes, numKeysBytes]
        }
    }

    /// The floats of OUTPUT0's raw contents.
    static func vectors(_ response: Inference_ModelInferResponse) -> [Float] {
        guard let raw = response.rawOutputContents.first else { return [] }
        return raw.withUnsafeBytes { bytes in
            (0..<(bytes.count / 4)).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// The RPC error a call throws.
    static func error(_ call: () async throws -> Void) async -> RPCError? {
        do {
            try await call()
            return nil
        } catch {
            return error as? RPCError
        }
    }

    @Test("health, server metadata, model metadata and readiness")
    func metadata() async throws {
        let fixture = try ServerFixture(options: Self.options())
        let model = fixture.model
        try await Self.withServer(fixture) { client, _, _ in
            #expect(try await client.serverLive(.init()).live)
            #expect(try await client.serverReady(.init()).ready)
            let server = try await client.serverMetadata(.init())
            #expect(server.name == "swift-hps")
            #expect(try await client.modelReady(.with { $0.name = model }).ready)
            #expect(try await client.modelReady(.with { $0.name = "nope" }).ready == false)
            let metadata = try await client.modelMetadata(.with { $0.name = model })
            #expect(metadata.name == model && metadata.versions == ["1"] && metadata.platform == "hps")
            #expect(metadata.inputs.map { [$0.name, $0.datatype] } == [["KEYS", "INT64"], ["NUMKEYS", "INT32"]])
            #expect(metadata.inputs.map(\.shape) == [[-1], [-1]])
            #expect(metadata.outputs.map(\.name) == ["OUTPUT0"])
            let index = try await client.repositoryIndex(.init())
            #expect(index.models.map { [$0.name, $0.version, $0.state] } == [[model, "1", "READY"]])
        }
    }

    @Test("ModelInfer with raw INT64 and INT32 keys returns the vectors a direct lookup gives")
    func inferRaw() async throws {
        let fixture = try ServerFixture(options: Self.options())
        let model = fixture.model
        let expected = try fixture.expected([[0, 17, 99, 17], [100, 142]])
        try await Self.withServer(fixture) { client, _, _ in
            for keysType in ["INT64", "INT32"] {
                var request = Self.request(model: model, keys: [0, 17, 99, 17, 100, 142], numKeys: [4, 2], keysType: keysType)
                request.id = "r1"
                let response = try await client.modelInfer(request)
                #expect(response.modelName == model && response.modelVersion == "1" && response.id == "r1")
                #expect(response.outputs.map { [$0.name, $0.datatype] } == [["OUTPUT0", "FP32"]])
                #expect(response.outputs.first?.shape == [6, 8])
                #expect(Self.vectors(response) == expected)
            }
        }
    }

    @Test("a request larger than the HTTP/2 window (106 KB against windows of 64 KB and 1 MiB) returns the vectors a direct lookup gives",
          arguments: [65_535, 1 << 20])
    func requestLargerThanWindow(windowBytes: Int) async throws {
        let fixture = try ServerFixture(options: Self.options { $0.grpcWindowBytes = windowBytes })
        let model = fixture.model
        let first = (0..<6_656).map { Int64($0 % 100) }, second = (0..<6_656).map { Int64(100 + ($0 * 7) % 100) }
        let expected = try fixture.expected([first, second])
        try await Self.withServer(fixture) { client, _, _ in
            for _ in 0..<3 {
                let response = try await client.modelInfer(Self.request(model: model, keys: first + second, numKeys: [6_656, 6_656]))
                #expect(response.outputs.first?.shape == [13_312, 8])
                #expect(Self.vectors(response) == expected)
            }
        }
    }

    @Test("ModelInfer with typed contents (int64_contents, int_contents) returns the same vectors")
    func inferTyped() async throws {
        let fixture = try ServerFixture(options: Self.options())
        let model = fixture.model
        let expected = try fixture.expected([[5, 6], [105]])
        try await Self.withServer(fixture) { client, _, _ in
            for keysType in ["INT64", "INT32"] {
                let request = Inference_ModelInferRequest.with {
                    $0.modelName = model
                    $0.inputs = [
                        .with {
                            $0.name = "KEYS"
                            $0.datatype = keysType
                            $0.shape = [3]
                            if keysType == "INT64" { $0.contents.int64Contents = [5, 6, 105] } else { $0.contents.intContents = [5, 6, 105] }
                        },
                        .with {
                            $0.name = "NUMKEYS"
                            $0.datatype = "INT32"
                            $0.shape = [2]
                            $0.contents.intContents = [2, 1]
                        },
                    ]
                }
                let response = try await client.modelInfer(request)
                #expect(Self.vectors(response) == expected)
            }
        }
    }

    @Test("refusals carry the gRPC code and the HTTP endpoints' message")
    func errors() async throws {
        let fixture = try ServerFixture(batchSize: 4, keysPerSample: 2, options: Self.options { $0.maxBodyBytes = 4096 })
        let model = fixture.model
        try await Self.withServer(fixture) { client, _, _ in
            let unknown = await Self.error { _ = try await client.modelInfer(Self.request(model: "nope", keys: [1], numKeys: [1, 0])) }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message.contains("no model named \"nope\"") == true && unknown?.message.contains(model) == true)
            let metadata = await Self.error { _ = try await client.modelMetadata(.with { $0.name = "nope" }) }
            #expect(metadata?.code == .notFound)
            let version = await Self.error {
                var request = Self.request(model: model, keys: [1], numKeys: [1, 0])
                request.modelVersion = "2"
                _ = try await client.modelInfer(request)
            }
            #expect(version?.code == .notFound && version?.message.contains("no version \"2\"") == true)
            let datatype = await Self.error { _ = try await client.modelInfer(Self.request(model: model, keys: [1], numKeys: [1, 0], keysType: "FP32")) }
            #expect(datatype?.code == .invalidArgument && datatype?.message.contains("KEYS has datatype FP32") == true)
            let sum = await Self.error { _ = try await client.modelInfer(Self.request(model: model, keys: [1, 2], numKeys: [1, 0])) }
            #expect(sum?.code == .invalidArgument && sum?.message.contains("sums to 1 but KEYS has 2 keys") == true)
            let tooMany = await Self.error { _ = try await client.modelInfer(Self.request(model: model, keys: Array(0..<9), numKeys: [9, 0])) }
            #expect(tooMany?.code == .invalidArgument && tooMany?.message.contains("max_batch_size") == true)
            let rawCount = await Self.error {
                var request = Self.request(model: model, keys: [1], numKeys: [1, 0])
                request.rawInputContents.removeLast()
                _ = try await client.modelInfer(request)
            }
            #expect(rawCount?.code == .invalidArgument && rawCount?.message.contains("raw_input_contents") == true)
            let rawSize = await Self.error {
                var request = Self.request(model: model, keys: [1], numKeys: [1, 0])
                request.inputs[0].shape = [2]
                _ = try await client.modelInfer(request)
            }
            #expect(rawSize?.code == .invalidArgument && rawSize?.message.contains("16 bytes, but its raw_input_contents has 8") == true)
            let large = await Self.error { _ = try await client.modelInfer(Self.request(model: model, keys: Array(0..<1000), numKeys: [1000, 0])) }
            // Refused from the message's length prefix, before its body is read (RequestMessageSizeLimit).
            #expect(large?.code == .resourceExhausted, "\(String(describing: large))")
            #expect(large?.message.contains("larger than the server's limit of 4096 bytes; raise it with hps serve --max-body-bytes") == true,
                    "\(String(describing: large))")
        }
    }

    @Test("with a token, RPCs but ServerLive and ServerReady need authorization: Bearer <token>")
    func auth() async throws {
        let fixture = try ServerFixture(options: Self.options { $0.token = "s3cret" })
        let model = fixture.model
        let expected = try fixture.expected([[1], [101]])
        try await Self.withServer(fixture) { client, _, _ in
            #expect(try await client.serverLive(.init()).live)
            #expect(try await client.serverReady(.init()).ready)
            let missing = await Self.error { _ = try await client.modelMetadata(.with { $0.name = model }) }
            #expect(missing?.code == .unauthenticated && missing?.message.contains("authorization: Bearer <token>") == true)
            let wrong = await Self.error {
                _ = try await client.modelInfer(Self.request(model: model, keys: [1, 101], numKeys: [1, 1]),
                                                metadata: ["authorization": "Bearer nope"])
            }
            #expect(wrong?.code == .unauthenticated && wrong?.message.contains("not the server's token") == true)
            let response = try await client.modelInfer(Self.request(model: model, keys: [1, 101], numKeys: [1, 1]),
                                                       metadata: ["authorization": "Bearer s3cret"])
            #expect(Self.vectors(response) == expected)
        }
    }

    @Test("ModelInfer is counted in the inference metrics, with its keys and tier hits")
    func metrics() async throws {
        let fixture = try ServerFixture(options: Self.options())
        let model = fixture.model
        try await Self.withServer(fixture) { client, _, _ in
            _ = try await client.modelInfer(Self.request(model: model, keys: [1, 2, 101], numKeys: [2, 1]))
            _ = await Self.error { _ = try await client.modelInfer(Self.request(model: model, keys: [1], numKeys: [2, 1])) }
        }
        let text = String(decoding: fixture.server.metrics.exposition(), as: UTF8.self)
        #expect(text.contains("hps_inference_requests_total{model=\"\(model)\"} 2"))
        #expect(text.contains("hps_inference_failures_total{model=\"\(model)\",status=\"400\"} 1"))
        #expect(text.contains("hps_keys_looked_up_total{model=\"\(model)\",table=\""))
        #expect(text.contains("hps_tier_hits_total{model=\"\(model)\""))
    }

    @Test("a graceful shutdown answers the stream in flight and refuses new connections")
    func gracefulShutdown() async throws {
        let fixture = try ServerFixture(options: Self.options())
        let model = fixture.model
        let expected = try fixture.expected([[9], [109]])
        let (secondSignal, sendSecond) = AsyncStream.makeStream(of: Void.self)
        let answers = try await Self.withServer(fixture) { client, port, group in
            try await client.modelStreamInfer(requestProducer: { writer in
                try await writer.write(Self.request(model: model, keys: [9, 109], numKeys: [1, 1]))
                for await _ in secondSignal { break }
                try await writer.write(Self.request(model: model, keys: [9, 109], numKeys: [1, 1]))
            }, onResponse: { response in
                var answers: [[Float]] = []
                var refused = false
                for try await message in response.messages {
                    answers.append(Self.vectors(message.inferResponse))
                    if answers.count == 1 {
                        await group.triggerGracefulShutdown()
                        for _ in 0..<100 {
                            if LoopbackConnection(port: port) == nil { refused = true; break }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                        sendSecond.yield()
                    }
                }
                #expect(refused, "new connections are refused once shutdown begins")
                return answers
            })
        }
        #expect(answers == [expected, expected])
    }
}
