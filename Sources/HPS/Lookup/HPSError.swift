/// The error the library's entry points throw when a parameter server
/// cannot be opened or a model cannot be loaded: what kind of problem it is
/// (`code`), one sentence that says what to fix (`message`), where it is
/// (`context`: the model, table, file or configuration setting), and the
/// error that caused it (`cause`), in the shape of grpc-swift-2's `RPCError`.
///
/// ```swift
/// do {
///     let server = try await HierarchicalParameterServer.open(configurationFile: "hps.json")
/// } catch let error as HPSError where error.code == .modelFiles {
///     print("fix the model folder \(error.context.file ?? "?"): \(error.message)")
/// }
/// ```
///
/// Lookups keep their own typed `LookupError` (they are the hot path, and a
/// caller switches on its cases), and parsing a configuration its
/// `ConfigurationError`; both appear here as the `cause` when they stop an
/// open or a load.
public struct HPSError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem stopped the call.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case invalidConfiguration = "invalid configuration"
            case modelFiles = "model files"
            case store = "store"
            case device = "device"
            case unknownModel = "unknown model"
        }

        private let value: Value

        private init(_ value: Value) { self.value = value }

        /// The configuration is not valid, or names a part that was not
        /// given to this server (a tier, an update source); `cause` is a
        /// `ConfigurationError` naming the setting.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A model's sparse files are missing, unreadable or do not match its
        /// configuration; `cause` is a `ModelFileError`.
        public static let modelFiles = Code(.modelFiles)
        /// A tier (the hash maps, Redis Cluster, RocksDB, the mapped files)
        /// could not be created or refused the model's tables; `cause` is a
        /// `StoreError` or the tier's own error.
        public static let store = Code(.store)
        /// The GPU could not hold or serve the model's tables; `cause` is the
        /// GPU cache factory's error (`CUDAError` from HPSCUDA).
        public static let device = Code(.device)
        /// A model named to load is not in the configuration.
        public static let unknownModel = Code(.unknownModel)

        /// The code in words, as in "invalid configuration".
        public var description: String { value.rawValue }
    }

    /// Where the problem is: each field is set where the call knows it.
    public struct Context: Hashable, Sendable {
        /// The model being loaded.
        public var model: String?
        /// The table of the model.
        public var table: String?
        /// The file or folder that could not be used.
        public var file: String?
        /// The configuration setting, as a JSON path (`volatile_db.type`).
        public var setting: String?

        /// A context of the fields given.
        public init(model: String? = nil, table: String? = nil, file: String? = nil, setting: String? = nil) {
            self.model = model
            self.table = table
            self.file = file
            self.setting = setting
        }
    }

    /// What kind of problem it is.
    public var code: Code
    /// One sentence that says what to fix, as the command line prints it.
    public var message: String
    /// Where the problem is.
    public var context: Context
    /// The error that caused this one, if another error did.
    public var cause: (any Error)?

    /// An error of `code` saying `message`.
    public init(code: Code, message: String, context: Context = Context(), cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.context = context
        self.cause = cause
    }

    /// The message: one sentence a user can act on.
    public var description: String { message }

    /// `error` as an `HPSError`: itself if it is one, else an error whose code
    /// follows from the cause's type (a configuration, model file or store
    /// error), or is `otherwise` for an error of a part outside this module
    /// (a tier's, the GPU's). The context takes what the cause names, then
    /// `model`.
    package static func wrapping(_ error: any Error, otherwise code: Code, model: String? = nil) -> HPSError {
        if var error = error as? HPSError {
            error.context.model = error.context.model ?? model
            return error
        }
        var context = Context(model: model)
        let resolved: Code
        switch error {
        case let error as ConfigurationError:
            resolved = .invalidConfiguration
            context.setting = error.path
            if case let .unreadableFile(path, _) = error { context.file = path }
        case let error as ModelFileError:
            resolved = .modelFiles
            (context.table, context.file) = (error.table, error.path)
        case let error as StoreError:
            resolved = .store
            context.table = error.table
        case let LookupError.unknownModel(name, _):
            resolved = .unknownModel
            context.model = name
        default:
            resolved = code
        }
        return HPSError(code: resolved, message: String(describing: error), context: context, cause: error)
    }
}
