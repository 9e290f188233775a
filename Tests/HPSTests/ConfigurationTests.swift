import Foundation
import Testing

@testable import HPS

struct ConfigurationTests {
    // MARK: Helpers

    /// The notebook configuration with edits applied to its top level and its only model.
    private func notebook(
        root editRoot: (inout JSONObject) -> Void = { _ in },
        model editModel: (inout JSONObject) -> Void = { _ in }
    ) throws -> String {
        var root = try #require(try JSONValue.parse(Fixtures.notebook).objectValue)
        var model = try #require(root["models"]?.arrayValue?.first?.objectValue)
        editModel(&model)
        root["models"] = .array([.object(model)])
        editRoot(&root)
        return JSONValue.object(root).serialized(pretty: true)
    }

    /// The error message for parsing `json`, or `nil` when it parses.
    private func errorMessage(_ json: String) -> String? {
        do {
            _ = try HPSConfiguration.parse(json: json)
            return nil
        } catch {
            return error.description
        }
    }

    /// The error message for the notebook configuration with one model key set (or removed).
    private func modelError(_ key: String, _ value: JSONValue?) throws -> String? {
        errorMessage(try notebook(model: { $0[key] = value }))
    }

    /// A configuration with `volatile_db` set to `section`.
    private func volatileDatabase(_ section: JSONValue) throws -> VolatileDatabaseConfiguration {
        try HPSConfiguration.parse(json: try notebook(root: { $0["volatile_db"] = section })).volatileDatabase
    }

    // MARK: The notebook configuration

    @Test("the notebook configuration parses with its values")
    func notebookValues() throws {
        let configuration = try HPSConfiguration.parse(json: Fixtures.notebook)
        #expect(configuration.supportLongLong == false)
        #expect(configuration.fuseEmbeddingTable == true)
        #expect(configuration.baseDirectory == nil)
        #expect(configuration.models.count == 1)
        let model = try #require(configuration.model(named: "8_table"))
        #expect(model.name == "8_table")
        #expect(model.sparseFiles == (0..<8).map { "embeddings/table\($0)" })
        #expect(model.tableNames == (0..<8).map { "table\($0)" })
        #expect(model.tableCount == 8)
        #expect(model.vecSizes == Array(repeating: 128, count: 8))
        #expect(model.maxQueryKeysPerSample == Array(repeating: 26, count: 8))
        #expect(model.numWorkerBuffersInPool == 8)
        #expect(model.deployedDevices == [0])
        #expect(model.maxBatchSize == 256)
        #expect(model.cacheRefreshPercentagePerIteration == 1.0)
        #expect(model.hitRateThreshold == 1.0)
        #expect(model.gpuCachePercentage == 1.0)
        #expect(model.gpuCache == true)
        #expect(model.embeddingCacheType == .dynamic)
        #expect(model.useContextStream == true)
        #expect(model.maxKeysPerLookup(table: 3) == 256 * 26)
        #expect(configuration.fusesEmbeddingTables(of: model))
        #expect(configuration.model(named: "missing") == nil)
    }

    @Test("keys the notebook leaves out get HugeCTR's defaults")
    func notebookModelDefaults() throws {
        let model = try #require(try HPSConfiguration.parse(json: Fixtures.notebook).models.first)
        #expect(model.denseFile == "")
        #expect(model.numRefresherBuffersInPool == 1)
        #expect(model.maxDenseFeaturesPerSample == 26)
        #expect(model.refreshDelay == 0)
        #expect(model.refreshInterval == 0)
        #expect(model.useStaticTable == false)
        #expect(model.effectiveCacheType == .dynamic)
        #expect(model.useHCTRCacheImplementation == true)
        #expect(model.threadPoolSize == 16)
        #expect(model.initEmbeddingCache == true)
        #expect(model.enablePageLock == false)
        #expect(model.fp8Quant == false)
        #expect(model.fuseEmbeddingTable == true)
    }

    @Test("model keys absent from a minimal model get HugeCTR's defaults")
    func minimalModelDefaults() throws {
        let json = """
            {"supportlonglong": true, "models": [{"model": "m", "sparse_files": ["a", "b"],
             "deployed_device_list": [0], "maxnum_catfeature_query_per_table_per_sample": [1, 2],
             "embedding_vecsize_per_table": [4, 8], "default_value_for_each_table": [0.5, 1]}]}
            """
        let configuration = try HPSConfiguration.parse(json: json)
        let model = try #require(configuration.models.first)
        #expect(configuration.fuseEmbeddingTable == false)
        #expect(model.fuseEmbeddingTable == false)
        #expect(!configuration.fusesEmbeddingTables(of: model))
        #expect(model.maxBatchSize == 64)
        #expect(model.gpuCache == true)
        #expect(model.gpuCachePercentage == 0.2)
        #expect(model.hitRateThreshold == 0.9)
        #expect(model.numWorkerBuffersInPool == 1)
        #expect(model.cacheRefreshPercentagePerIteration == 0)
        #expect(model.tableNames == ["sparse_embedding0", "sparse_embedding1"])
        #expect(model.defaultValues == [0.5, 1.0])
        #expect(model.embeddingCacheType == .dynamic)
        #expect(configuration.warnings.isEmpty)
    }

    @Test("the notebook's single default value is padded to the table count with a warning")
    func defaultValuesPadded() throws {
        let configuration = try HPSConfiguration.parse(json: Fixtures.notebook)
        #expect(configuration.models[0].defaultValues == Array(repeating: 0, count: 8))
        #expect(configuration.warnings == [
            "models[0].default_value_for_each_table has 1 entry but sparse_files has 8; the missing default values are 0.0"
        ])
    }

    @Test("a default value beyond float32's range is refused naming its element (found by the Configuration fuzzer)",
          arguments: ["1e39", "-3.5e38", "9999999999999999999999999999999999999999999999999999999991"])
    func defaultValueBeyondFloat32(value: String) throws {
        let json = Fixtures.notebook.replacing(#/"default_value_for_each_table": \[[^\]]*\]/#,
                                               with: "\"default_value_for_each_table\": [0.5, \(value)]")
        #expect(json != Fixtures.notebook)
        let error = #expect(throws: ConfigurationError.self) { try HPSConfiguration.parse(json: json) }
        guard case let .invalidValue(path, expected, _) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
        #expect(path == "models[0].default_value_for_each_table[1]")
        #expect(expected.contains("float32"))
        // The largest float32 is accepted, and written back as a number the reader takes again.
        let largest = Fixtures.notebook.replacing(#/"default_value_for_each_table": \[[^\]]*\]/#,
                                                  with: "\"default_value_for_each_table\": [3.4e38]")
        let configuration = try HPSConfiguration.parse(json: largest)
        #expect(configuration.models[0].defaultValues[0] == Float(3.4e38))
        #expect(try HPSConfiguration.parse(json: configuration.jsonValue().serialized()) == configuration)
    }

    @Test("fp8_quant: true stores the model in fp8 (vector_storage fp8), with no warning, and is written back")
    func fp8QuantMeansFP8Storage() throws {
        let json = Fixtures.notebook.replacingOccurrences(of: "\"gpucache\"", with: "\"fp8_quant\": true, \"gpucache\"")
        try #require(json != Fixtures.notebook)
        let configuration = try HPSConfiguration.parse(json: json)
        #expect(configuration.models[0].fp8Quant)
        #expect(configuration.models[0].vectorStorage == .fp8)
        #expect(!configuration.warnings.contains { $0.contains("fp8_quant") })
        // Written back, it is kept, so a configuration read again says the same.
        let again = try HPSConfiguration.parse(json: configuration.jsonValue().serialized())
        #expect(again.models[0].fp8Quant)
        #expect(again.models[0].vectorStorage == .fp8)
    }

    @Test("without volatile_db the in-memory hash map is used with defaults")
    func volatileDatabaseDefaults() throws {
        let database = try HPSConfiguration.parse(json: Fixtures.notebook).volatileDatabase
        #expect(database == VolatileDatabaseConfiguration())
        #expect(database.type == .hashMap)
        #expect(database.address == "127.0.0.1:7000")
        #expect(database.userName == "default")
        #expect(database.password == "")
        #expect(database.numPartitions == min(16, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        #expect(database.allocationRate == 268_435_456)
        #expect(database.sharedMemorySize == 17_179_869_184)
        #expect(database.sharedMemoryName == "hctr_mp_hash_map_database")
        #expect(database.sharedMemoryAutoRemove == true)
        #expect(database.numNodeConnections == 5)
        #expect(database.maxBatchSize == 65536)
        #expect(database.enableTLS == false)
        #expect(database.tlsCACertificate == "cacertbundle.crt")
        #expect(database.tlsClientCertificate == "client_cert.pem")
        #expect(database.tlsClientKey == "client_key.pem")
        #expect(database.tlsServerNameIdentification == "redis.localhost")
        #expect(database.overflowMargin == UInt64.max)
        #expect(database.overflowPolicy == .evictRandom)
        #expect(database.overflowResolutionTarget == 0.8)
        #expect(database.initialCacheRate == 1.0)
        #expect(database.cacheMissedEmbeddings == false)
        #expect(database.updateFilters == ["^hps_.+$"])
    }

    @Test("a volatile_db section without type disables the volatile tier")
    func volatileDatabaseWithoutType() throws {
        #expect(try volatileDatabase(["num_partitions": 4]).type == .disabled)
        #expect(try volatileDatabase(["num_partitions": 4]).numPartitions == 4)
    }

    @Test("every volatile_db key is read")
    func volatileDatabaseKeys() throws {
        let database = try volatileDatabase([
            "type": "redis_cluster", "address": "10.0.0.1:7000,10.0.0.2:7000", "user_name": "hps",
            "password": "secret", "num_partitions": 12, "allocation_rate": 1024, "shared_memory_size": 4096,
            "shared_memory_name": "shm", "shared_memory_auto_remove": false, "num_node_connections": 2,
            "max_batch_size": 100, "enable_tls": true, "tls_ca_certificate": "ca", "tls_client_certificate": "cert",
            "tls_client_key": "key", "tls_server_name_identification": "sni", "overflow_margin": .unsigned(.max),
            "overflow_policy": "evict_oldest", "overflow_resolution_target": 0.5, "initial_cache_rate": 0.25,
            "cache_missed_embeddings": true, "update_filters": ["^a$", "^b$"],
        ])
        var expected = VolatileDatabaseConfiguration()
        expected.type = .redisCluster
        expected.address = "10.0.0.1:7000,10.0.0.2:7000"
        expected.userName = "hps"
        expected.password = "secret"
        expected.numPartitions = 12
        expected.allocationRate = 1024
        expected.sharedMemorySize = 4096
        expected.sharedMemoryName = "shm"
        expected.sharedMemoryAutoRemove = false
        expected.numNodeConnections = 2
        expected.maxBatchSize = 100
        expected.enableTLS = true
        expected.tlsCACertificate = "ca"
        expected.tlsClientCertificate = "cert"
        expected.tlsClientKey = "key"
        expected.tlsServerNameIdentification = "sni"
        expected.overflowPolicy = .evictOldest
        expected.overflowResolutionTarget = 0.5
        expected.initialCacheRate = 0.25
        expected.cacheMissedEmbeddings = true
        expected.updateFilters = ["^a$", "^b$"]
        #expect(database == expected)
    }

    @Test("persistent_db defaults to disabled and reads every key, including the mapped type")
    func persistentDatabase() throws {
        let defaults = try HPSConfiguration.parse(json: Fixtures.notebook).persistentDatabase
        #expect(defaults.type == .disabled)
        #expect(defaults.path == "/tmp/rocksdb")
        #expect(defaults.numThreads == 16)
        #expect(defaults.readOnly == false)
        #expect(defaults.maxBatchSize == 65536)
        #expect(defaults.updateFilters == ["^hps_.+$"])
        let json = try notebook(root: {
            $0["persistent_db"] = [
                "type": "mapped", "path": "/data/db", "num_threads": 4, "read_only": true,
                "max_batch_size": 10, "update_filters": [],
            ]
        })
        let database = try HPSConfiguration.parse(json: json).persistentDatabase
        #expect(database.type == .mapped)
        #expect(database.path == "/data/db")
        #expect(database.numThreads == 4)
        #expect(database.readOnly == true)
        #expect(database.maxBatchSize == 10)
        #expect(database.updateFilters == [])
        let rocks = try notebook(root: { $0["persistent_db"] = ["type": "rocks_db"] })
        #expect(try HPSConfiguration.parse(json: rocks).persistentDatabase.type == .rocksDB)
    }

    @Test("update_source defaults to none and reads every key")
    func updateSource() throws {
        let defaults = try HPSConfiguration.parse(json: Fixtures.notebook).updateSource
        #expect(defaults.type == .null)
        #expect(defaults.brokers == "127.0.0.1:9092")
        #expect(defaults.metadataRefreshIntervalMs == 30000)
        #expect(defaults.receiveBufferSize == 262_144)
        #expect(defaults.pollTimeoutMs == 500)
        #expect(defaults.maxBatchSize == 8192)
        #expect(defaults.failureBackoffMs == 50)
        #expect(defaults.maxCommitInterval == 32)
        let json = try notebook(root: {
            $0["update_source"] = [
                "type": "kafka_message_queue", "brokers": "k:9092", "metadata_refresh_interval_ms": 1,
                "receive_buffer_size": 2, "poll_timeout_ms": 3, "max_batch_size": 4, "failure_backoff_ms": 5,
                "max_commit_interval": 6,
            ]
        })
        let source = try HPSConfiguration.parse(json: json).updateSource
        #expect(source.type == .kafkaMessageQueue)
        #expect(source.brokers == "k:9092")
        let values: [Int] = [
            source.metadataRefreshIntervalMs, source.receiveBufferSize, source.pollTimeoutMs, source.maxBatchSize,
            source.failureBackoffMs, source.maxCommitInterval,
        ]
        #expect(values == [1, 2, 3, 4, 5, 6])
    }

    @Test("use_static_table forces the static cache whatever embedding_cache_type says")
    func staticTableForcesStaticCache() throws {
        let json = try notebook(model: {
            $0["use_static_table"] = true
            $0["embedding_cache_type"] = "uvm"
        })
        let model = try HPSConfiguration.parse(json: json).models[0]
        #expect(model.embeddingCacheType == .uvm)
        #expect(model.effectiveCacheType == .static)
    }

    @Test("a model can opt out of table fusion, but cannot opt in when the global flag is off")
    func perModelFusion() throws {
        let optOut = try HPSConfiguration.parse(json: try notebook(model: { $0["fuse_embedding_table"] = false }))
        #expect(!optOut.fusesEmbeddingTables(of: optOut.models[0]))
        let globalOff = try HPSConfiguration.parse(
            json: try notebook(root: { $0["fuse_embedding_table"] = false }, model: { $0["fuse_embedding_table"] = true }))
        #expect(globalOff.models[0].fuseEmbeddingTable)
        #expect(!globalOff.fusesEmbeddingTables(of: globalOff.models[0]))
    }

    @Test("integers written as 256.0 are accepted for integer fields")
    func integralDoubleAccepted() throws {
        let model = try HPSConfiguration.parse(json: try notebook(model: { $0["max_batch_size"] = 256.0 })).models[0]
        #expect(model.maxBatchSize == 256)
    }

    @Test("integers are accepted for floating-point fields")
    func integerForDouble() throws {
        let model = try HPSConfiguration.parse(json: try notebook(model: {
            $0["hit_rate_threshold"] = 1
            $0["refresh_interval"] = 30
            $0["default_value_for_each_table"] = [1]
        })).models[0]
        #expect(model.hitRateThreshold == 1.0)
        #expect(model.refreshInterval == 30.0)
        #expect(model.defaultValues[0] == 1.0)
    }

    @Test("label_dim and slot_num are accepted without a warning")
    func tritonKeysIgnored() throws {
        let json = try notebook(model: {
            $0["label_dim"] = 1
            $0["slot_num"] = 26
            $0["default_value_for_each_table"] = .array(Array(repeating: 0.0, count: 8))
        })
        #expect(try HPSConfiguration.parse(json: json).warnings.isEmpty)
    }

    @Test("unknown keys give a warning with a suggestion when a known key is close")
    func unknownKeys() throws {
        let json = try notebook(
            root: {
                $0["volatile_db"] = ["type": "hash_map", "num_partition": 2]
                $0["comment"] = "hello"
            },
            model: {
                $0["max_batchsize"] = 8
                $0["default_value_for_each_table"] = .array(Array(repeating: 0.0, count: 8))
            })
        #expect(try HPSConfiguration.parse(json: json).warnings == [
            "unknown key comment is ignored",
            "unknown key volatile_db.num_partition is ignored; did you mean num_partitions?",
            "unknown key models[0].max_batchsize is ignored; did you mean max_batch_size?",
        ])
    }

    @Test("jsonValue writes every key and parses back to an equal configuration")
    func roundTrip() throws {
        let json = try notebook(
            root: {
                $0["volatile_db"] = ["type": "multi_process_hash_map", "overflow_margin": 1000, "overflow_policy": "evict_least_used"]
                $0["persistent_db"] = ["type": "rocks_db", "path": "/data/rocks"]
                $0["update_source"] = ["type": "kafka_message_queue"]
            },
            model: {
                $0["default_value_for_each_table"] = [0.1, 0.2, -1.5, 0, 1e-3, 3, 4, 5]
                $0["refresh_delay"] = 2.5
                $0["use_static_table"] = true
            })
        let configuration = try HPSConfiguration.parse(json: json, baseDirectory: "/configs")
        let written = configuration.jsonValue()
        let reparsed = try HPSConfiguration.parse(json: written.serialized(pretty: true), baseDirectory: "/configs")
        #expect(reparsed == configuration)
        #expect(reparsed.warnings.isEmpty)
        #expect(reparsed.jsonValue() == written)
        #expect(written["models"]?.arrayValue?.first?.objectValue?.count == 29)  // every key of a replicated model: gpu_shards only when set
        #expect(written["volatile_db"]?.objectValue?.count == 22)
        #expect(written["persistent_db"]?.objectValue?.count == 6)
        #expect(written["update_source"]?.objectValue?.count == 8)
        let defaults = try HPSConfiguration.parse(json: Fixtures.notebook)
        #expect(try HPSConfiguration.parse(json: defaults.jsonValue().serialized()) == defaults)
        #expect(defaults.jsonValue()["volatile_db"]?["overflow_margin"] == .unsigned(.max))
    }

    // MARK: Errors

    @Test("invalid JSON is reported with line and column")
    func invalidJSON() {
        #expect(errorMessage("{\n  \"supportlonglong\": true\n  \"models\": []\n}")
            == "the configuration is not valid JSON: expected ',' or '}' after object member but found '\"' at line 3, column 3")
    }

    @Test("a top level that is not an object is a wrong-type error")
    func topLevelNotObject() {
        #expect(errorMessage("[]") == "the configuration must be an object but is an array")
    }

    @Test("models is required and must not be empty")
    func modelsRequired() throws {
        #expect(errorMessage(#"{"supportlonglong": true}"#) == "models is required but missing")
        #expect(errorMessage(#"{"supportlonglong": true, "models": []}"#) == "models must be a non-empty array but is []")
        #expect(errorMessage(#"{"supportlonglong": true, "models": [1]}"#) == "models[0] must be an object but is the number 1")
    }

    @Test("supportlonglong is required")
    func supportLongLongRequired() throws {
        #expect(errorMessage(try notebook(root: { $0["supportlonglong"] = nil })) == "supportlonglong is required but missing")
        #expect(errorMessage(try notebook(root: { $0["supportlonglong"] = 1 }))
            == "supportlonglong must be a boolean but is the number 1")
    }

    @Test(
        "every required model key is reported when missing",
        arguments: [
            "sparse_files", "deployed_device_list", "maxnum_catfeature_query_per_table_per_sample",
            "embedding_vecsize_per_table", "default_value_for_each_table",
        ])
    func requiredModelKey(key: String) throws {
        #expect(try modelError(key, nil) == "models[0].\(key) is required but missing")
    }

    @Test("a string where a number belongs is a wrong-type error naming the path")
    func stringForInteger() throws {
        #expect(try modelError("max_batch_size", "256") == #"models[0].max_batch_size must be an integer but is the string "256""#)
        #expect(try modelError("gpucacheper", "0.5") == #"models[0].gpucacheper must be a number but is the string "0.5""#)
    }

    @Test("a fractional number for an integer field is a wrong-type error")
    func fractionForInteger() throws {
        #expect(try modelError("max_batch_size", 2.5) == "models[0].max_batch_size must be an integer but is the number 2.5")
    }

    @Test("a wrong element type in a per-table list names the element")
    func wrongElementType() throws {
        #expect(try modelError("embedding_vecsize_per_table", [128, 128, "x"])
            == #"models[0].embedding_vecsize_per_table[2] must be an integer but is the string "x""#)
        #expect(try modelError("sparse_files", "embeddings") == #"models[0].sparse_files must be an array but is the string "embeddings""#)
    }

    @Test("an unknown enum string lists the allowed values")
    func invalidEnum() throws {
        let json = try notebook(root: { $0["volatile_db"] = ["type": "hash_map", "overflow_policy": "lru"] })
        #expect(errorMessage(json)
            == #"volatile_db.overflow_policy must be one of evict_random, evict_least_used, evict_oldest but is "lru""#)
    }

    @Test("enum strings are matched exactly")
    func enumCaseSensitive() throws {
        #expect(try modelError("embedding_cache_type", "Dynamic")
            == #"models[0].embedding_cache_type must be one of dynamic, static, uvm but is "Dynamic""#)
        let json = try notebook(root: { $0["volatile_db"] = ["type": "HASH_MAP"] })
        #expect(errorMessage(json)
            == #"volatile_db.type must be one of hash_map, parallel_hash_map, multi_process_hash_map, redis_cluster, disabled but is "HASH_MAP""#)
    }

    @Test("a per-table list with the wrong length names both lists")
    func countMismatch() throws {
        #expect(try modelError("embedding_vecsize_per_table", .array(Array(repeating: 128, count: 7)))
            == "models[0].embedding_vecsize_per_table has 7 entries but sparse_files has 8")
        #expect(try modelError("maxnum_catfeature_query_per_table_per_sample", [26])
            == "models[0].maxnum_catfeature_query_per_table_per_sample has 1 entry but sparse_files has 8")
        #expect(try modelError("embedding_table_names", ["a", "b"])
            == "models[0].embedding_table_names has 2 entries but sparse_files has 8")
    }

    @Test("more default values than tables is an error")
    func tooManyDefaultValues() throws {
        #expect(try modelError("default_value_for_each_table", .array(Array(repeating: 0.0, count: 9)))
            == "models[0].default_value_for_each_table has 9 entries but sparse_files has 8")
    }

    @Test("vector sizes, query counts and max_batch_size must be at least 1")
    func positiveSizes() throws {
        #expect(try modelError("embedding_vecsize_per_table", [128, 128, 128, 0, 128, 128, 128, 128])
            == "models[0].embedding_vecsize_per_table[3] must be at least 1 but is 0")
        #expect(try modelError("maxnum_catfeature_query_per_table_per_sample", [26, 26, 26, 26, 26, 26, 26, -1])
            == "models[0].maxnum_catfeature_query_per_table_per_sample[7] must be at least 1 but is -1")
        #expect(try modelError("max_batch_size", 0) == "models[0].max_batch_size must be at least 1 but is 0")
    }

    @Test(
        "fractions must lie between 0 and 1",
        arguments: ["gpucacheper", "hit_rate_threshold", "cache_refresh_percentage_per_iteration"])
    func modelFractions(key: String) throws {
        #expect(try modelError(key, 1.5) == "models[0].\(key) must be between 0 and 1 but is 1.5")
        #expect(try modelError(key, -0.1) == "models[0].\(key) must be between 0 and 1 but is -0.1")
        #expect(try modelError(key, 0) == nil)
    }

    @Test("initial_cache_rate must lie between 0 and 1")
    func initialCacheRate() throws {
        let json = try notebook(root: { $0["volatile_db"] = ["initial_cache_rate": 2] })
        #expect(errorMessage(json) == "volatile_db.initial_cache_rate must be between 0 and 1 but is 2")
    }

    @Test("overflow_resolution_target must be above 0 and at most 1")
    func overflowResolutionTarget() throws {
        let zero = try notebook(root: { $0["volatile_db"] = ["overflow_resolution_target": 0] })
        #expect(errorMessage(zero) == "volatile_db.overflow_resolution_target must be greater than 0 and at most 1 but is 0")
        #expect(try volatileDatabase(["overflow_resolution_target": 1]).overflowResolutionTarget == 1)
    }

    @Test("num_partitions must be at least 1")
    func numPartitions() throws {
        let json = try notebook(root: { $0["volatile_db"] = ["num_partitions": 0] })
        #expect(errorMessage(json) == "volatile_db.num_partitions must be at least 1 but is 0")
    }

    @Test("overflow_margin must be at least 1")
    func overflowMargin() throws {
        let zero = try notebook(root: { $0["volatile_db"] = ["overflow_margin": 0] })
        #expect(errorMessage(zero) == "volatile_db.overflow_margin must be at least 1 but is 0")
        let negative = try notebook(root: { $0["volatile_db"] = ["overflow_margin": -5] })
        #expect(errorMessage(negative) == "volatile_db.overflow_margin must be at least 1 but is -5")
        #expect(try volatileDatabase(["overflow_margin": 1_000_000]).overflowMargin == 1_000_000)
    }

    @Test("device ids must not be negative")
    func negativeDevice() throws {
        #expect(try modelError("deployed_device_list", [0, -1])
            == "models[0].deployed_device_list[1] must be a device id of at least 0 but is -1")
    }

    @Test("device ids must not repeat")
    func repeatedDevice() throws {
        #expect(try modelError("deployed_device_list", [0, 1, 0])
            == "models[0].deployed_device_list[2] must be a device id not listed before but is 0")
    }

    @Test("model names must match [a-zA-Z0-9_-]{1,120}")
    func modelName() throws {
        #expect(try modelError("model", "my model") == #"models[0].model must be 1 to 120 letters, digits, '_' or '-' but is "my model""#)
        #expect(try modelError("model", nil) == #"models[0].model must be 1 to 120 letters, digits, '_' or '-' but is """#)
        #expect(try modelError("model", .string(String(repeating: "a", count: 121))) != nil)
        #expect(try modelError("model", .string(String(repeating: "a", count: 120))) == nil)
        #expect(try modelError("model", "A-b_9") == nil)
    }

    @Test("two models with the same name are an error")
    func duplicateModelName() throws {
        var root = try #require(try JSONValue.parse(Fixtures.notebook).objectValue)
        let model = try #require(root["models"]?.arrayValue?.first)
        root["models"] = [model, model]
        #expect(errorMessage(JSONValue.object(root).serialized())
            == #"models[1].model is "8_table", which models[0] already uses; every model needs a unique name"#)
    }

    @Test("two tables of one model with the same name are an error")
    func duplicateTableName() throws {
        #expect(try modelError("embedding_table_names", ["t0", "t1", "t2", "t3", "t1", "t5", "t6", "t7"])
            == #"models[0].embedding_table_names[4] is "t1", which models[0].embedding_table_names[1] already uses; every table of a model needs a unique name"#)
    }

    // MARK: Files

    @Test("load reads a file and records its folder as the base directory")
    func loadFromFile() throws {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("hps-config-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("8_table.json")
        try Fixtures.notebook.write(to: file, atomically: true, encoding: .utf8)

        let configuration = try HPSConfiguration.load(path: file.path)
        #expect(configuration.baseDirectory == folder.path)
        #expect(configuration == (try HPSConfiguration.parse(json: Fixtures.notebook, baseDirectory: folder.path)))
    }

    @Test("loading a missing file names the file and the system's reason")
    func loadMissingFile() {
        do {
            _ = try HPSConfiguration.load(path: "/nonexistent-hps/8_table.json")
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect(error == .unreadableFile(path: "/nonexistent-hps/8_table.json", reason: "No such file or directory"))
            #expect(error.description == "cannot read the configuration file /nonexistent-hps/8_table.json: No such file or directory")
        }
    }

    @Test("loading a folder is an unreadable-file error")
    func loadFolder() {
        #expect(throws: ConfigurationError.unreadableFile(path: "/tmp", reason: "Is a directory")) {
            try HPSConfiguration.load(path: "/tmp")
        }
    }

    @Test("the base directory of a bare file name is the working directory")
    func baseDirectoryOfBareName() {
        #expect(ConfigurationFile.directory(of: "hps.json") == ".")
        #expect(ConfigurationFile.directory(of: "/hps.json") == "/")
        #expect(ConfigurationFile.directory(of: "a/b/hps.json") == "a/b")
    }
}
