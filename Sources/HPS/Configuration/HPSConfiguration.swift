/// A parameter server configuration in HugeCTR's HPS JSON format.
///
/// Every key of HugeCTR's parser is read with HugeCTR's default, and the values are checked
/// (counts of per-table lists, ranges, unique names) before any model is loaded, so that a
/// mistake is reported as one sentence naming its JSON path. Non-fatal findings, such as
/// unknown keys or a short `default_value_for_each_table`, are collected in `warnings`.
public struct HPSConfiguration: Sendable, Equatable {
    /// Whether keys are 64-bit (`supportlonglong: true`) or 32-bit; one key type for all models.
    public var supportLongLong: Bool
    /// Whether tables of equal vector size are fused (`fuse_embedding_table`); a model takes
    /// part only when its own flag is on too.
    public var fuseEmbeddingTable: Bool
    /// The in-memory tier shared by all models (`volatile_db`).
    public var volatileDatabase: VolatileDatabaseConfiguration
    /// The tier holding the full models (`persistent_db`).
    public var persistentDatabase: PersistentDatabaseConfiguration
    /// Where online updates come from (`update_source`).
    public var updateSource: UpdateSourceConfiguration
    /// The served models (`models`), at least one, with unique names.
    public var models: [ModelConfiguration]
    /// Non-fatal notes found while parsing, one sentence each; not compared by `==`.
    public var warnings: [String]
    /// The folder of the configuration file when loaded from a file, `nil` when parsed from a
    /// string.
    public var baseDirectory: String?

    /// Parses a configuration from JSON text.
    ///
    /// - Parameter baseDirectory: stored in `baseDirectory`; the text itself is not affected.
    /// - Throws: `ConfigurationError` for invalid JSON, missing required keys, values of the
    ///   wrong type or out of range, mismatched per-table lists and duplicate names.
    public static func parse(json: String, baseDirectory: String? = nil) throws(ConfigurationError) -> HPSConfiguration {
        let document: JSONValue
        do {
            document = try JSONValue.parse(json)
        } catch {
            throw .invalidJSON(reason: error.reason, line: error.line, column: error.column)
        }
        return try HPSConfiguration(document: document, baseDirectory: baseDirectory)
    }

    /// Reads and parses the configuration file at `path`; `baseDirectory` becomes the file's
    /// folder as written in `path` (`.` for a bare file name).
    ///
    /// - Throws: `ConfigurationError.unreadableFile` with the system's reason when the file
    ///   cannot be read, otherwise the errors of `parse(json:baseDirectory:)`.
    public static func load(path: String) throws(ConfigurationError) -> HPSConfiguration {
        let text = try ConfigurationFile.text(atPath: path)
        return try parse(json: text, baseDirectory: ConfigurationFile.directory(of: path))
    }

    /// The model called `name`, or `nil` when there is none.
    public func model(named name: String) -> ModelConfiguration? {
        models.first { $0.name == name }
    }

    /// Whether `model`'s tables are fused: both the top-level and the model's flag are on.
    public func fusesEmbeddingTables(of model: ModelConfiguration) -> Bool {
        fuseEmbeddingTable && model.fuseEmbeddingTable
    }

    /// The configuration as JSON with every key written out, so that parsing
    /// `jsonValue().serialized()` gives an equal configuration.
    package func jsonValue() -> JSONValue {
        .object(JSONObject([
            ("supportlonglong", .bool(supportLongLong)),
            ("fuse_embedding_table", .bool(fuseEmbeddingTable)),
            ("volatile_db", volatileDatabase.jsonValue()),
            ("persistent_db", persistentDatabase.jsonValue()),
            ("update_source", updateSource.jsonValue()),
            ("models", .array(models.map { $0.jsonValue() })),
        ]))
    }

    /// Two configurations are equal when they configure the same server; `warnings` are
    /// notes about the text they came from and are not compared.
    public static func == (lhs: HPSConfiguration, rhs: HPSConfiguration) -> Bool {
        lhs.supportLongLong == rhs.supportLongLong
            && lhs.fuseEmbeddingTable == rhs.fuseEmbeddingTable
            && lhs.volatileDatabase == rhs.volatileDatabase
            && lhs.persistentDatabase == rhs.persistentDatabase
            && lhs.updateSource == rhs.updateSource
            && lhs.models == rhs.models
            && lhs.baseDirectory == rhs.baseDirectory
    }

    private init(document: JSONValue, baseDirectory: String?) throws(ConfigurationError) {
        var reader = try ConfigurationReader(document, path: "")
        var warnings: [String] = []
        self.baseDirectory = baseDirectory

        supportLongLong = try ConfigurationReader.bool(try reader.required("supportlonglong"), path: "supportlonglong")
        fuseEmbeddingTable = try reader.bool("fuse_embedding_table", default: false)

        if let section = reader.value("volatile_db") {
            var sectionReader = try ConfigurationReader(section, path: "volatile_db")
            volatileDatabase = try VolatileDatabaseConfiguration(reading: &sectionReader)
            warnings += sectionReader.unknownKeyWarnings()
        } else {
            volatileDatabase = VolatileDatabaseConfiguration()
        }
        if let section = reader.value("persistent_db") {
            var sectionReader = try ConfigurationReader(section, path: "persistent_db")
            persistentDatabase = try PersistentDatabaseConfiguration(reading: &sectionReader)
            warnings += sectionReader.unknownKeyWarnings()
        } else {
            persistentDatabase = PersistentDatabaseConfiguration()
        }
        if let section = reader.value("update_source") {
            var sectionReader = try ConfigurationReader(section, path: "update_source")
            updateSource = try UpdateSourceConfiguration(reading: &sectionReader)
            warnings += sectionReader.unknownKeyWarnings()
        } else {
            updateSource = UpdateSourceConfiguration()
        }

        let globalFuse = fuseEmbeddingTable
        let entries = try reader.requiredArray("models") { (value, path) throws(ConfigurationError) in
            (value, path)
        }
        guard !entries.isEmpty else {
            throw .invalidValue(path: "models", expected: "a non-empty array", found: "[]")
        }
        var models: [ModelConfiguration] = []
        for (value, path) in entries {
            var modelReader = try ConfigurationReader(value, path: path)
            let model = try ModelConfiguration(
                reading: &modelReader, globalFuseEmbeddingTable: globalFuse, warnings: &warnings)
            if let first = models.firstIndex(where: { $0.name == model.name }) {
                throw .duplicateModelName(name: model.name, path: "\(path).model", firstPath: "models[\(first)]")
            }
            warnings += modelReader.unknownKeyWarnings()
            models.append(model)
        }
        self.models = models
        self.warnings = reader.unknownKeyWarnings() + warnings
    }
}
