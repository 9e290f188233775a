import HPSDemo
import HPS
import Testing

/// Models loaded, reloaded and unloaded on a `HierarchicalParameterServer`:
/// each version under its own table tags, the old one serving until its
/// tables are dropped, failed loads leaving nothing behind.
struct ModelDeploymentTests {
    /// A two-table seed model written to a fresh folder, and its configuration.
    static func model(seed: UInt64 = 1) throws -> (TemporaryDirectory, HPSConfiguration, SeedModel) {
        let directory = try TemporaryDirectory(prefix: "hps-deployment")
        var model = SeedModel()
        model.tables = 2
        model.vocab = 50
        model.dim = 4
        model.keyType = .int64
        model.seed = seed
        let path = try model.write(to: directory.path)
        return (directory, try HPSConfiguration.load(path: path), model)
    }

    @Test("loading: only the models named are loaded; an unknown name is refused with the configuration's models")
    func loadingAtStart() throws {
        let (directory, configuration, model) = try Self.model()
        defer { directory.remove() }
        let none = try HierarchicalParameterServer(configuration: configuration, parallelism: 1, loading: [])
        #expect(none.models.isEmpty)
        #expect(throws: LookupError.unknownModel(model.modelName, available: [])) { try none.session(model: model.modelName) }
        let error = #expect(throws: HPSError.self) {
            try HierarchicalParameterServer(configuration: configuration, parallelism: 1, loading: ["other"])
        }
        #expect(error?.code == .unknownModel)
        #expect(error?.context.model == "other")
        #expect(error?.cause as? LookupError == .unknownModel("other", available: [model.modelName]))
    }

    @Test("a reload loads beside the version served, under .v1 tags; the old version answers until its tables are dropped")
    func reload() throws {
        let (directory, configuration, model) = try Self.model()
        defer { directory.remove() }
        let server = try HierarchicalParameterServer(configuration: configuration, parallelism: 1)
        let old = try server.deployment(model: model.modelName)
        #expect(old.generation == 0)
        #expect(old.tags == old.session.plan.groups.map { FusionPlan.tag(model: model.modelName, group: $0.name) })
        let before = try old.session.lookup(table: 0, keys: [1, 2])
        var changed = model
        changed.seed = 77
        _ = try changed.write(to: directory.path)
        let (loaded, replaced) = try server.load(configuration.models[0])
        #expect(replaced === old)
        #expect(loaded.generation == 1)
        #expect(loaded.tags.allSatisfy { $0.hasSuffix(".v1") })
        let after = try server.session(model: model.modelName).lookup(table: 0, keys: [1, 2])
        #expect(after != before)
        // The old version still answers with its own rows until dropped.
        #expect(try old.session.lookup(table: 0, keys: [1, 2]) == before)
        #expect(server.dropTables(of: old).isEmpty)
        #expect(server.volatileStore?.tableTags == loaded.tags)
        #expect(server.unload(model: model.modelName) === loaded)
        #expect(server.models.isEmpty)
        #expect(server.dropTables(of: loaded).isEmpty)
        #expect(server.volatileStore?.tableTags == [])
    }

    @Test("a load that fails keeps the version served and leaves no table of its own behind")
    func failedLoad() throws {
        let (directory, configuration, model) = try Self.model()
        defer { directory.remove() }
        let server = try HierarchicalParameterServer(configuration: configuration, parallelism: 1)
        var broken = configuration.models[0]
        broken.sparseFiles[1] = directory.path + "/missing"
        let error = #expect(throws: HPSError.self) { try server.load(broken) }
        #expect(error?.code == .modelFiles)
        #expect(error?.context.model == model.modelName)
        #expect(error?.context.table == broken.tableNames[1])
        #expect(error?.context.file?.hasPrefix(directory.path + "/missing") == true)
        #expect(error?.cause is ModelFileError)
        #expect(try server.deployment(model: model.modelName).generation == 0)
        #expect(server.volatileStore?.tableTags == (try server.deployment(model: model.modelName)).tags)
    }
}
