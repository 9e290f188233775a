import Testing

@testable import HPS

struct BackendAvailabilityTests {
    /// What starting a server on a one-table configuration with `key`'s
    /// section added throws (nil: it started); `section` is given the folder
    /// the configuration lies in.
    private func startFailure(_ key: String, _ section: (_ directory: String) -> [(String, JSONValue)]) throws -> (any Error)? {
        let directory = try TemporaryDirectory(prefix: "hps-backend")
        defer { directory.remove() }
        try RandomTable(count: 10, vecSize: 2, seed: 1).write(to: joinPath(directory.path, "t0"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2)],
                                          extra: [(key, .object(JSONObject(section(directory.path))))])
        do {
            _ = try TestConfiguration.server(json, in: directory.path)
            return nil
        } catch {
            return error
        }
    }

    @Test("redis_cluster, where not registered, is refused as not available in this build, with its JSON path")
    func redisClusterUnregistered() throws {
        // The HPSRedis tests run in this same process and register redis_cluster;
        // once registered it is available, and what it throws is theirs to test.
        let error = try startFailure("volatile_db") { _ in [("type", .string("redis_cluster"))] } as? StoreError
        if let error, case .backendUnavailable("volatile_db.type", "redis_cluster", _) = error {
            #expect(error.description.contains("not available in this build"))
            return
        }
        #expect(StoreBackends.factory(volatile: .redisCluster) != nil,
                "redis_cluster started or failed otherwise without being registered")
    }

    /// The configuration error that starting a one-table server with `section` added throws.
    private func configurationError(_ key: String, _ section: [(String, JSONValue)]) throws -> ConfigurationError? {
        let error = try startFailure(key) { _ in section }
        #expect(error is ConfigurationError, "\(String(describing: error))")
        return error as? ConfigurationError
    }

    @Test("multi_process_hash_map, which no build has, is a configuration error naming volatile_db.type, not a missing part of this build")
    func multiProcessHashMap() throws {
        let error = try configurationError("volatile_db", [("type", .string("multi_process_hash_map"))])
        guard case let .invalidValue(path, _, found) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
        #expect(path == "volatile_db.type")
        #expect(found == "\"multi_process_hash_map\"")
        let text = error?.description ?? ""
        #expect(!text.contains("not available in this build"), "\(text)")
        #expect(text.hasPrefix("volatile_db.type must be hash_map, parallel_hash_map or redis_cluster"), "\(text)")
    }

    @Test("persistent backends not registered are refused with their JSON path", arguments: ["rocks_db", "mapped"])
    func persistentBackends(type: String) throws {
        // The RocksDB and mapped tests of this test process register their
        // backends, at any moment: registration only ever adds a factory, so a
        // factory present after the attempt means the attempt proves nothing.
        let error = try startFailure("persistent_db") { [("type", .string(type)), ("path", .string(joinPath($0, "db")))] }
            as? StoreError
        if StoreBackends.factory(persistent: PersistentDatabaseType(rawValue: type)!) != nil { return }
        guard case let .backendUnavailable(path, found, _) = error else {
            Issue.record("expected backendUnavailable, got \(String(describing: error))")
            return
        }
        #expect(path == "persistent_db.type")
        #expect(found == type)
        #expect(error?.description.contains("not available in this build") == true)
        #expect(error?.description.contains("persistent_db.type") == true)
    }

    @Test("the Kafka update source, where not registered, is refused with its JSON path")
    func kafkaUpdateSource() throws {
        // The HPSKafka tests of this test process register it (with the Kafka
        // trait), at any moment: once registered, the attempt proves nothing.
        let error = try startFailure("update_source") { _ in [("type", .string("kafka_message_queue"))] } as? StoreError
        if StoreBackends.hasUpdateSource(.kafkaMessageQueue) { return }
        guard case let .backendUnavailable(path, found, _) = error else {
            Issue.record("expected backendUnavailable, got \(String(describing: error))")
            return
        }
        #expect(path == "update_source.type")
        #expect(found == "kafka_message_queue")
        #expect(error?.description.contains("not available in this build") == true)
        #expect(error?.description.contains("update_source.type") == true)
    }

    @Test("a disabled volatile tier with no persistent tier is a configuration error naming volatile_db.type")
    func disabledVolatileTier() throws {
        let error = try configurationError("volatile_db", [("type", .string("disabled"))])
        guard case let .invalidValue(path, _, found) = error else {
            Issue.record("expected invalidValue, got \(String(describing: error))")
            return
        }
        #expect(path == "volatile_db.type")
        #expect(found == "\"disabled\"")
        let text = error?.description ?? ""
        #expect(!text.contains("not available in this build"), "\(text)")
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
    @Test("a backend's error reads as the backend's own sentence")
    func backendErrorDescription() {
        let error = StoreError.backend(kind: "rocks_db", message: "RocksDB failed to open the database at /x: IO error")
        #expect(error.description == "RocksDB failed to open the database at /x: IO error")
    }
}
