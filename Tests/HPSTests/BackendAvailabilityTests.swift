import Testing

@testable import HPS

struct BackendAvailabilityTests {
    /// What starting a server on a one-table configuration with `key`'s
    /// section added throws (nil: it started); `section` is given the folder
    /// the configuration lies in.
    private func startFailure(_ key: String, _ section: (_ directory: String) -> [(String, JSONValue)]) throws -> HPSError? {
        let directory = try TemporaryDirectory(prefix: "hps-backend")
        defer { directory.remove() }
        try RandomTable(count: 10, vecSize: 2, seed: 1).write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2)],
                                          extra: [(key, .object(JSONObject(section(directory.path))))])
        do {
            _ = try TestConfiguration.server(json, in: directory.path)
            return nil
        } catch {
            #expect(error is HPSError, "\(error)")
            return error as? HPSError
        }
    }

    @Test("redis_cluster, with no Redis backend given to the server, is refused with its JSON path and the backend to pass")
    func redisClusterNotGiven() throws {
        let error = try configurationError("volatile_db") { _ in [("type", .string("redis_cluster"))] }
        guard let error, case .backendUnavailable("volatile_db.type", "redis_cluster", _) = error else {
            Issue.record("expected backendUnavailable for volatile_db.type, got \(String(describing: error))")
            return
        }
        #expect(error.description.hasPrefix("volatile_db.type \"redis_cluster\" is not available: no Redis Cluster tier was given to this server"))
        #expect(error.description.contains("StoreBackend.redisCluster"))
    }

    /// The configuration error that starting a one-table server with `section` added throws:
    /// the cause of an `HPSError` of code `invalidConfiguration` that names the setting.
    private func configurationError(_ key: String,
                                    _ section: (_ directory: String) -> [(String, JSONValue)]) throws -> ConfigurationError? {
        let error = try startFailure(key, section)
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))")
        let cause = error?.cause as? ConfigurationError
        #expect(cause != nil, "\(String(describing: error?.cause))")
        #expect(error?.context.setting == cause?.path)
        #expect(error?.message == cause?.description)
        return cause
    }

    @Test("multi_process_hash_map, which no build has, is a configuration error naming volatile_db.type, not a missing part of this build")
    func multiProcessHashMap() throws {
        let error = try configurationError("volatile_db") { _ in [("type", .string("multi_process_hash_map"))] }
        guard case let .invalidValue(path, _, found) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
        #expect(path == "volatile_db.type")
        #expect(found == "\"multi_process_hash_map\"")
        let text = error?.description ?? ""
        #expect(!text.contains("not available"), "\(text)")
        #expect(text.hasPrefix("volatile_db.type must be hash_map, parallel_hash_map or redis_cluster"), "\(text)")
    }

    @Test("persistent tiers no backend given provides are refused with their JSON path", arguments: ["rocks_db", "mapped"])
    func persistentBackends(type: String) throws {
        let error = try configurationError("persistent_db") { [("type", .string(type)), ("path", .string(joinPath($0, "db")))] }
        guard case let .backendUnavailable(path, found, _) = error else {
            Issue.record("expected backendUnavailable, got \(String(describing: error))")
            return
        }
        #expect(path == "persistent_db.type")
        #expect(found == type)
        #expect(error?.description.hasPrefix("persistent_db.type \"\(type)\" is not available: ") == true)
        #expect(error?.description.contains(type == "mapped" ? "StoreBackend.mapped" : "StoreBackend.rocksDB") == true)
    }

    @Test("the Kafka update source, with no Kafka backend given, is refused with its JSON path")
    func kafkaUpdateSource() throws {
        let error = try configurationError("update_source") { _ in [("type", .string("kafka_message_queue"))] }
        guard case let .backendUnavailable(path, found, _) = error else {
            Issue.record("expected backendUnavailable, got \(String(describing: error))")
            return
        }
        #expect(path == "update_source.type")
        #expect(found == "kafka_message_queue")
        #expect(error?.description.hasPrefix("update_source.type \"kafka_message_queue\" is not available: ") == true)
        #expect(error?.description.contains("StoreBackend.kafka") == true)
    }

    @Test("a disabled volatile tier with no persistent tier is a configuration error naming volatile_db.type")
    func disabledVolatileTier() throws {
        let error = try configurationError("volatile_db") { _ in [("type", .string("disabled"))] }
        guard case let .invalidValue(path, _, found) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
        #expect(path == "volatile_db.type")
        #expect(found == "\"disabled\"")
        let text = error?.description ?? ""
        #expect(!text.contains("not available"), "\(text)")
    }

    @Test("hash_map and parallel_hash_map both serve", arguments: ["hash_map", "parallel_hash_map"])
    func hashMapsServe(type: String) throws {
        let directory = try TemporaryDirectory(prefix: "hps-backend")
        defer { directory.remove() }
        let table = RandomTable(count: 10, vecSize: 2, seed: 2)
        try table.write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2)],
                                          extra: [("volatile_db", .object(JSONObject([("type", .string(type)),
                                                                                     ("num_partitions", .integer(3))])))])
        let server = try TestConfiguration.server(json, in: directory.path)
        #expect(server.volatileStore?.kind == "hash_map")
        #expect(try server.session(model: "m").lookup(table: 0, keys: table.keys) == table.vectors)
    }
}

struct StoreErrorTests {
    struct TierFailure: Error, CustomStringConvertible {
        let description: String
    }

    @Test("a backend's error reads as the backend's own sentence, after what was being done if given, and keeps its cause")
    func backendErrorDescription() {
        let cause = TierFailure(description: "RocksDB failed to open the database at /x: IO error")
        let error = StoreError.backend(kind: "rocks_db", table: "t", operation: nil, cause: cause)
        #expect(error.description == "RocksDB failed to open the database at /x: IO error")
        #expect(error.table == "t")
        guard case let .backend(_, _, _, kept) = error else { return }
        #expect(kept is TierFailure)
        let inserting = StoreError.backend(kind: "redis_cluster", table: "t", operation: "inserting into t", cause: cause)
        #expect(inserting.description == "inserting into t failed: RocksDB failed to open the database at /x: IO error")
        #expect(inserting != error)
        #expect(inserting == StoreError.backend(kind: "redis_cluster", table: "t", operation: "inserting into t",
                                                cause: TierFailure(description: cause.description)))
    }
}
