import HPSDemo
import HPS
import HPSServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The KServe v2 REST endpoints with JSON tensors.
struct KServeEndpointTests {
    @Test("GET /v2 gives the server metadata with the binary tensor extension")
    func serverMetadata() async throws {
        let fixture = try ServerFixture()
        try await fixture.test { client in
            try await client.execute(uri: "/v2", method: .get) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["name"] == "swift-hps")
                #expect(json["extensions"]?.arrayValue?.contains("binary_tensor_data") == true)
            }
        }
    }

    @Test("health live and ready answer 200")
    func health() async throws {
        let fixture = try ServerFixture()
        try await fixture.test { client in
            for path in ["/v2/health/live", "/v2/health/ready"] {
                try await client.execute(uri: path, method: .get) { response in #expect(response.status == .ok) }
            }
        }
    }

    @Test("model metadata names the inputs KEYS and NUMKEYS and the output OUTPUT0")
    func modelMetadata() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)", method: .get) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["name"] == .string(model))
                #expect(json["versions"] == ["1"])
                #expect(json["platform"] == "hps")
                let inputs = json["inputs"]?.arrayValue ?? []
                #expect(inputs.map { $0["name"] } == ["KEYS", "NUMKEYS"])
                #expect(inputs.map { $0["datatype"] } == ["INT64", "INT32"])
                #expect(inputs.map { $0["shape"] } == [[-1], [-1]])
                #expect(json["outputs"]?.arrayValue?.first?["name"] == "OUTPUT0")
                #expect(json["outputs"]?.arrayValue?.first?["shape"] == [-1])
                #expect(json["outputs"]?.arrayValue?.first?["datatype"] == "FP32")
            }
            try await client.execute(uri: "/v2/models/\(model)/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/\(model)/versions/1/ready", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test("model config as Triton's HPS backend declares it, and the repository index")
    func modelConfigAndIndex() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        try await fixture.test { client in
            try await client.execute(uri: "/v2/models/\(model)/config", method: .get) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["input"]?.arrayValue?.map { $0["data_type"] } == ["TYPE_INT64", "TYPE_INT32"])
                #expect(json["output"]?.arrayValue?.first?["name"] == "OUTPUT0")
                #expect(json["parameters"]?["embedding_vecsize_per_table"] == "8,8")
            }
            try await client.execute(uri: "/v2/repository/index", method: .post) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json == [["name": .string(model), "version": "1", "state": "READY"]])
            }
        }
    }

    @Test("infer with JSON tensors returns the vectors of each table's keys in order")
    func inferJSON() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[0, 5, 99], [100, 150]])
        try await fixture.test { client in
            let body = ByteBuffer(json: inferRequest(keys: [0, 5, 99, 100, 150], numKeys: [3, 2]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["model_name"] == .string(model))
                #expect(json["model_version"] == "1")
                let output = json["outputs"]?.arrayValue?.first
                #expect(output?["name"] == "OUTPUT0")
                #expect(output?["datatype"] == "FP32")
                #expect(output?["shape"] == [5, 8])
                #expect(floats(output?["data"]) == expected)
            }
        }
        #expect(expected.count == 40)
        #expect(Set(expected).count > 30, "the vectors are random, not defaults")
    }

    @Test("infer takes INT32 keys, nested data, a versioned path and echoes the id")
    func inferInt32Nested() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[7], [107, 108]])
        try await fixture.test { client in
            let request: JSONValue = .object(JSONObject([
                ("id", "req-1"),
                ("inputs", .array([
                    .object(JSONObject([("name", "KEYS"), ("datatype", "INT32"), ("shape", [1, 3]), ("data", [[7, 107, 108]])])),
                    tensor("NUMKEYS", "INT32", [2], [1, 2]),
                ])),
                ("outputs", [["name": "OUTPUT0"]]),
            ]))
            try await client.execute(uri: "/v2/models/\(model)/versions/1/infer", method: .post, body: ByteBuffer(json: request)) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(json["id"] == "req-1")
                #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            }
        }
    }

    @Test("a table with no keys gives no rows")
    func emptyTable() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[], [120]])
        try await fixture.test { client in
            let body = ByteBuffer(json: inferRequest(keys: [120], numKeys: [0, 1]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let output = try response.json["outputs"]?.arrayValue?.first
                #expect(output?["shape"] == [1, 8])
                #expect(floats(output?["data"]) == expected)
            }
        }
    }

    @Test("GET /metrics counts requests, and keys, tier hits, defaults and hit ratios per table")
    func metrics() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        try await fixture.test { client in
            // 150 is not a key of table0 (keys 0..<100): one default there.
            let body = ByteBuffer(json: inferRequest(keys: [1, 150, 101], numKeys: [2, 1]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: body) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/models/nope/infer", method: .post, body: body) { #expect($0.status == .notFound) }
        }
        let app = Application(router: fixture.server.metricsRouter())
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.contains("hps_inference_requests_total{model=\"\(model)\"} 1"))
                #expect(text.contains("hps_inference_failures_total{model=\"unknown\",status=\"404\"} 1"))
                #expect(text.contains("hps_keys_looked_up_total{model=\"\(model)\",table=\"table0\"} 2"))
                #expect(text.contains("hps_keys_looked_up_total{model=\"\(model)\",table=\"table1\"} 1"))
                #expect(text.contains("hps_tier_hits_total{model=\"\(model)\",table=\"table0\",tier=\"hash_map\"} 1"))
                #expect(text.contains("hps_tier_hits_total{model=\"\(model)\",table=\"table1\",tier=\"hash_map\"} 1"))
                #expect(text.contains("hps_default_value_keys_total{model=\"\(model)\",table=\"table0\"} 1"))
                #expect(text.contains("hps_default_value_keys_total{model=\"\(model)\",table=\"table1\"} 0"))
                #expect(text.contains("hps_tier_hit_ratio{model=\"\(model)\",table=\"table0\",tier=\"hash_map\"} 0.5"))
                #expect(text.contains("hps_tier_hit_ratio{model=\"\(model)\",table=\"table1\",tier=\"hash_map\"} 1"))
                #expect(text.contains("hps_inference_request_duration_seconds_bucket{"))
                #expect(text.contains("hps_inference_request_receive_duration_seconds_count{model=\"\(model)\"} 1"))
                #expect(text.contains("hps_inference_queue_duration_seconds_count{model=\"\(model)\"} 1"))
                #expect(text.contains("hps_lookup_resume_duration_seconds_count{model=\"\(model)\"} 0"))
            }
        }
    }

    @Test("with supportlonglong false, INT32 keys are served and a key beyond 32 bits is a 400")
    func int32Deployment() async throws {
        let directory = try TemporaryDirectory(prefix: "hps-server")
        defer { directory.remove() }
        var seed = SeedModel()
        seed.tables = 2
        seed.vocab = 10
        seed.dim = 4
        seed.keyType = .int32
        let path = try seed.write(to: directory.path)
        let parameterServer = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), parallelism: 1)
        let server = try HPSServer(parameterServer: parameterServer)
        let session = try parameterServer.session(model: seed.modelName)
        let expected = try session.lookup(table: 0, keys: [3]) + session.lookup(table: 1, keys: [12])
        let model = seed.modelName
        try await Application(router: server.router()).test(.router) { client in
            let good = ByteBuffer(json: inferRequest(keys: [3, 12], numKeys: [1, 1], keysType: "INT32"))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: good) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            }
            let wide = ByteBuffer(json: inferRequest(keys: [1 << 40], numKeys: [1, 0]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: wide) { response in
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("32 bits") == true)
            }
        }
    }

    @Test("tables of different vec sizes give OUTPUT0 of shape [floats], table after table")
    func mixedVecSizes() async throws {
        let directory = try TemporaryDirectory(prefix: "hps-server")
        defer { directory.remove() }
        var wide = SeedModel()
        wide.tables = 1
        wide.vocab = 10
        wide.dim = 8
        wide.keyType = .int64
        try wide.write(to: directory.path + "/wide")
        var narrow = wide
        narrow.dim = 3
        narrow.seed = 7
        try narrow.write(to: directory.path + "/narrow")
        let json = """
            {"supportlonglong": true, "models": [{"model": "mixed", "max_batch_size": 16,
              "sparse_files": ["wide/embeddings/table0", "narrow/embeddings/table0"],
              "embedding_table_names": ["wide", "narrow"], "embedding_vecsize_per_table": [8, 3],
              "maxnum_catfeature_query_per_table_per_sample": [4, 4], "default_value_for_each_table": [0.0, 0.0],
              "deployed_device_list": [0]}]}
            """
        let configuration = try HPSConfiguration.parse(json: json, baseDirectory: directory.path)
        let parameterServer = try HierarchicalParameterServer(configuration: configuration, parallelism: 1)
        let server = try HPSServer(parameterServer: parameterServer)
        let session = try parameterServer.session(model: "mixed")
        let expected = try session.lookup(table: 0, keys: [1, 2]) + session.lookup(table: 1, keys: [5])
        #expect(expected.count == 19)
        try await Application(router: server.router()).test(.router) { client in
            let body = ByteBuffer(json: inferRequest(keys: [1, 2, 5], numKeys: [2, 1]))
            try await client.execute(uri: "/v2/models/mixed/infer", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let output = try response.json["outputs"]?.arrayValue?.first
                #expect(output?["shape"] == [19])
                #expect(floats(output?["data"]) == expected)
            }
        }
    }
}

/// The same endpoints through a real HTTP server on a loopback port.
struct LiveServerTests {
    @Test("infer over real HTTP on a loopback port")
    func live() async throws {
        let fixture = try ServerFixture()
        let model = fixture.model
        let expected = try fixture.expected([[42], [142]])
        let app = Application(router: fixture.server.router(),
                              configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let body = ByteBuffer(json: inferRequest(keys: [42, 142], numKeys: [1, 1]))
            try await client.execute(uri: "/v2/models/\(model)/infer", method: .post, body: body) { response in
                #expect(response.status == .ok)
                let json = try response.json
                #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            }
        }
    }
}
