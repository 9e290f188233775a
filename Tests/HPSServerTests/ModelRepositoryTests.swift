import HPSDemo
import HPS
@testable import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Triton's model repository extension over HTTP: index, load, unload, with
/// `--model-control-mode explicit` and `none`, reloads of new model files and
/// of a configuration given in the request, failed loads, and reloads while
/// requests run (none may fail). The gRPC side is tested with tritonclient
/// (Tests/python/test_model_control.py); its request decoding here.
struct ModelRepositoryTests {
    /// A seed model written to a folder and a server over its configuration
    /// file, with `loading` loaded at start.
    struct Fixture {
        let directory: TemporaryDirectory
        let path: String
        let server: HPSServer
        var seed: SeedModel

        init(mode: ModelRepository.ControlMode, loading: [String]? = nil) throws {
            directory = try TemporaryDirectory(prefix: "hps-repository")
            var seed = SeedModel()
            seed.tables = 2
            seed.vocab = 100
            seed.dim = 8
            seed.keyType = .int64
            seed.batchSize = 16
            seed.keysPerSample = 4
            self.seed = seed
            path = try seed.write(to: directory.path)
            var options = HPSServer.Options()
            options.modelControl = mode
            options.configurationPath = path
            let parameterServer = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), parallelism: 2,
                                                                  loading: loading)
            server = try HPSServer(parameterServer: parameterServer, options: options)
        }

        var model: String { seed.modelName }

        /// The vectors the model's files hold for `keys` of table 0 (read with a fresh hierarchy).
        func expected(_ keys: [Int64]) throws -> [Float] {
            let reference = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), parallelism: 1)
            return try reference.session(model: model).lookup(table: 0, keys: keys)
        }

        func test<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
            try await Application(router: server.router()).test(.router, body)
        }
    }

    static func infer(_ client: any TestClientProtocol, model: String, keys: [Int64]) async throws -> (HTTPResponse.Status, [Float], String?) {
        try await client.execute(uri: "/v2/models/\(model)/infer", method: .post,
                                 body: ByteBuffer(json: inferRequest(keys: keys, numKeys: [Int64(keys.count), 0]))) { response in
            guard response.status == .ok else { return (response.status, [], response.errorMessage) }
            let data = try response.json["outputs"]?.arrayValue?.first?["data"]?.arrayValue ?? []
            return (response.status, data.compactMap { value -> Float? in
                switch value {
                case let .double(x): Float(x)
                case let .integer(x): Float(x)
                default: nil
                }
            }, nil)
        }
    }

    static func index(_ client: any TestClientProtocol) async throws -> [String: (state: String, reason: String)] {
        try await client.execute(uri: "/v2/repository/index", method: .post) { response in
            #expect(response.status == .ok)
            var states: [String: (String, String)] = [:]
            for entry in try response.json.arrayValue ?? [] {
                states[entry["name"]?.stringValue ?? ""] = (entry["state"]?.stringValue ?? "", entry["reason"]?.stringValue ?? "")
            }
            return states
        }
    }

    @Test("the index request's body: ready true lists the served models only; a body that is not a JSON object, or a ready that is not a boolean, is refused with 400 and a sentence")
    func indexBody() async throws {
        let fixture = try Fixture(mode: .explicit, loading: [])
        try await fixture.test { client in
            try await client.execute(uri: "/v2/repository/index", method: .post, body: ByteBuffer(string: #"{"ready": true}"#)) { response in
                let entries = try response.json.arrayValue
                #expect(response.status == .ok)
                #expect(entries?.isEmpty == true)
            }
            try await client.execute(uri: "/v2/repository/index", method: .post, body: ByteBuffer(string: #"{"ready": false}"#)) { response in
                let entries = try response.json.arrayValue
                #expect(response.status == .ok)
                #expect(entries?.count == 1)
            }
            for (body, words) in [("{\"ready\": tru", "is not JSON"), ("[true]", "must be a JSON object"),
                                  (#"{"ready": "yes"}"#, "must be true or false")] {
                try await client.execute(uri: "/v2/repository/index", method: .post, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.errorMessage?.contains(words) == true, "\(body): \(response.errorMessage ?? "")")
                }
            }
        }
    }

    @Test("explicit: a model not loaded at start is listed without a state, loaded on request, served, unloaded, and then listed UNAVAILABLE")
    func loadAndUnload() async throws {
        let fixture = try Fixture(mode: .explicit, loading: [])
        let keys: [Int64] = [3, 7, 99]
        let want = try fixture.expected(keys)
        try await fixture.test { client in
            let model = fixture.model
            #expect(try await Self.index(client)[model]?.state == "")
            let (before, _, message) = try await Self.infer(client, model: model, keys: keys)
            #expect(before == .notFound)
            #expect(message?.contains("no model named") == true)

            try await client.execute(uri: "/v2/repository/models/\(model)/load", method: .post) { #expect($0.status == .ok) }
            #expect(try await Self.index(client)[model]?.state == "READY")
            let (status, vectors, _) = try await Self.infer(client, model: model, keys: keys)
            #expect(status == .ok)
            #expect(vectors == want)
            try await client.execute(uri: "/v2/models/\(model)/ready", method: .get) { #expect($0.status == .ok) }

            try await client.execute(uri: "/v2/repository/models/\(model)/unload", method: .post) { #expect($0.status == .ok) }
            let after = try await Self.index(client)[model]
            #expect(after?.state == "UNAVAILABLE")
            #expect(after?.reason == "unloaded")
            let (gone, _, goneMessage) = try await Self.infer(client, model: model, keys: keys)
            #expect(gone == .notFound)
            #expect(goneMessage?.contains("was unloaded; load it with POST v2/repository/models/\(model)/load") == true)
            try await client.execute(uri: "/v2/models/\(model)/ready", method: .get) { #expect($0.status == .notFound) }
            // A second unload names the model as not served.
            try await client.execute(uri: "/v2/repository/models/\(model)/unload", method: .post) { #expect($0.status == .notFound) }
        }
        // Unloading dropped its tables from the store.
        #expect(fixture.server.parameterServer.volatileStore?.tableTags == [])
    }

    @Test("none: every model is loaded at start, and load and unload are refused with the option to change")
    func controlModeNone() async throws {
        let fixture = try Fixture(mode: .none)
        try await fixture.test { client in
            #expect(try await Self.index(client)[fixture.model]?.state == "READY")
            for action in ["load", "unload"] {
                try await client.execute(uri: "/v2/repository/models/\(fixture.model)/\(action)", method: .post) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorMessage?.contains("--model-control-mode explicit") == true)
                }
            }
            let (status, _, _) = try await Self.infer(client, model: fixture.model, keys: [1])
            #expect(status == .ok)
        }
    }

    @Test("a load of new model files swaps the version served; the old version's tables are dropped")
    func reloadNewFiles() async throws {
        var fixture = try Fixture(mode: .explicit, loading: nil)
        let keys: [Int64] = [0, 50, 99]
        let old = try fixture.expected(keys)
        let first = fixture
        try await first.test { client in
            let (_, served, _) = try await Self.infer(client, model: first.model, keys: keys)
            #expect(served == old)
        }
        fixture.seed.seed = 99
        _ = try fixture.seed.write(to: fixture.directory.path)
        let new = try fixture.expected(keys)
        #expect(new != old)
        try await fixture.test { [fixture] client in
            try await client.execute(uri: "/v2/repository/models/\(fixture.model)/load", method: .post) { #expect($0.status == .ok) }
            let (status, served, _) = try await Self.infer(client, model: fixture.model, keys: keys)
            #expect(status == .ok)
            #expect(served == new)
        }
        let tags = fixture.server.parameterServer.volatileStore?.tableTags ?? []
        #expect(!tags.isEmpty)
        #expect(tags.allSatisfy { $0.hasSuffix(".v1") })
    }

    @Test("a load with the model's entry in the config parameter serves that entry; a failed load keeps the version served and says why")
    func loadWithConfiguration() async throws {
        let fixture = try Fixture(mode: .explicit, loading: nil)
        let configuration = try HPSConfiguration.load(path: fixture.path)
        var entry = try #require(configuration.model(named: fixture.model))
        entry.defaultValues = [0.5, 0.5]
        let keys: [Int64] = [5, 1_000_000]  // the second key is in no table: it gets the default
        let want = try fixture.expected([5])
        /// The model's entry as JSON, as the configuration file writes it.
        func entryJSON(_ entry: ModelConfiguration) -> String {
            var single = configuration
            single.models = [entry]
            return single.jsonValue()["models"]?.arrayValue?.first?.serialized() ?? ""
        }
        var broken = entry
        broken.sparseFiles = [fixture.directory.path + "/no-such-folder", broken.sparseFiles[1]]
        let good = entryJSON(entry), bad = entryJSON(broken)
        try await fixture.test { client in
            let body = JSONValue.object(JSONObject([("parameters", .object(JSONObject([
                ("config", .string(good)),
            ])))]))
            try await client.execute(uri: "/v2/repository/models/\(fixture.model)/load", method: .post,
                                     body: ByteBuffer(json: body)) { #expect($0.status == .ok) }
            let (status, served, _) = try await Self.infer(client, model: fixture.model, keys: keys)
            #expect(status == .ok)
            #expect(Array(served.prefix(8)) == want)
            #expect(Array(served.suffix(8)) == [Float](repeating: 0.5, count: 8))

            let failing = JSONValue.object(JSONObject([("parameters", .object(JSONObject([("config", .string(bad))])))]))
            try await client.execute(uri: "/v2/repository/models/\(fixture.model)/load", method: .post,
                                     body: ByteBuffer(json: failing)) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("failed to load model \(fixture.model)") == true)
                #expect(response.errorMessage?.contains("no-such-folder") == true)
            }
            // Still the version loaded before.
            let (still, again, _) = try await Self.infer(client, model: fixture.model, keys: keys)
            #expect(still == .ok)
            #expect(again == served)
            #expect(try await Self.index(client)[fixture.model]?.state == "READY")

            try await client.execute(uri: "/v2/repository/models/other/load", method: .post) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("has no model other") == true)
            }
        }
    }

    @Test("reloads while requests run: every request is answered, with the vectors of one version or the other")
    func reloadUnderLoad() async throws {
        let fixture = try Fixture(mode: .explicit, loading: nil)
        let keys: [Int64] = [1, 2, 3, 4]
        let want = try fixture.expected(keys)
        try await fixture.test { client in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var failures = 0
                        for _ in 0..<150 {
                            let (status, vectors, _) = try await Self.infer(client, model: fixture.model, keys: keys)
                            if status != .ok || vectors != want { failures += 1 }
                        }
                        return failures
                    }
                }
                group.addTask {
                    for _ in 0..<5 {
                        try await client.execute(uri: "/v2/repository/models/\(fixture.model)/load", method: .post) {
                            #expect($0.status == .ok)
                        }
                    }
                    return 0
                }
                var failures = 0
                for try await count in group { failures += count }
                #expect(failures == 0)
            }
        }
        // Five reloads, one version left in the store.
        let tags = fixture.server.parameterServer.volatileStore?.tableTags ?? []
        #expect(tags.allSatisfy { $0.hasSuffix(".v5") })
    }

    @Test("RepositoryModelLoad's request is read from the protobuf wire format: model name and string parameters")
    func wireDecoding() throws {
        func field(_ number: Int, _ bytes: [UInt8]) -> [UInt8] {
            [UInt8(number << 3 | 2), UInt8(bytes.count)] + bytes
        }
        let parameter = field(3, Array("{\"model\": \"m\"}".utf8))  // ModelRepositoryParameter.string_param
        let entry = field(1, Array("config".utf8)) + field(2, parameter)
        let bool = field(1, Array("flag".utf8)) + field(2, [1 << 3 | 0, 1])  // bool_param: not a string
        let message = field(1, Array("repo".utf8)) + field(2, Array("m".utf8)) + field(3, entry) + field(3, bool)
            + [4 << 3 | 0, 150, 1]  // an unknown varint field, skipped
        let request = try RepositoryControlRequest(bytes: message)
        #expect(request.repositoryName == "repo")
        #expect(request.modelName == "m")
        #expect(request.stringParameters == ["config": "{\"model\": \"m\"}"])
        #expect(throws: ProtobufWireError.self) { try RepositoryControlRequest(bytes: [2 << 3 | 2, 10, 1]) }
    }
}
