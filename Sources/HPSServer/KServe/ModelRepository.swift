package import HPS
import Logging
import Synchronization

/// The models a server serves, and how they change while it serves:
/// Triton's model repository extension (`v2/repository/index`,
/// `v2/repository/models/<name>/load` and `/unload`, over HTTP and gRPC) and
/// its `--model-control-mode`.
///
/// The repository is the configuration file the server was started with. A
/// load reads the model's entry from that file again (or takes one given in
/// the request), loads its tables into the stores beside the version being
/// served, and puts the new version in its place in one step: a request
/// holds the version it started on until it finishes, so requests in flight
/// finish on the old version and none fails. The old version's batcher,
/// background work and tables then go. An unload stops serving the model the
/// same way.
///
/// Thread safety: every method may be called from any task; loads and
/// unloads take turns.
public final class ModelRepository: Sendable {
    /// How models are loaded, as Triton's `--model-control-mode`.
    public enum ControlMode: String, Sendable, CaseIterable {
        /// Every model of the configuration is loaded at start and stays;
        /// load and unload requests are refused.
        case none
        /// The models named at start are loaded (`--load-model`); the others
        /// are loaded and unloaded on request.
        case explicit
    }

    /// One served version and what serving it takes.
    final class Entry: Sendable {
        let model: ServedModel
        let batcher: LookupBatcher
        /// Its tables and sessions in the hierarchy; nil for a prediction model.
        let deployment: ModelDeployment?
        /// Requests using it now (taken and given back once per request: an atomic, not a lock).
        let active = Atomic<Int>(0)
        /// Its caches' background work, running (a version loaded after start).
        let work = Locked<[Task<Void, Never>]>([])

        init(model: ServedModel, batcher: LookupBatcher, deployment: ModelDeployment?) {
            self.model = model
            self.batcher = batcher
            self.deployment = deployment
        }
    }

    struct State {
        var entries: [String: Entry] = [:]
        /// Why a model of the configuration is not served: "unloaded", or the error of its last load.
        var unavailable: [String: String] = [:]
    }

    /// The hierarchy the models are loaded into.
    package let parameterServer: HierarchicalParameterServer
    /// Whether models may be loaded and unloaded on request.
    package let mode: ControlMode
    /// The configuration file a load reads, nil when the server has none (tests, the demo).
    package let configurationPath: String?
    let metrics: ServerMetrics
    let pool: LookupThreadPool
    let batching: LookupBatcher.Options
    let logger: Logger
    private let state: Locked<State>
    /// Taken (on a thread that may block) for the whole of a load or unload.
    private let changes = Locked(())

    /// A repository serving `models` (the hierarchy's loaded models and the prediction models).
    init(parameterServer: HierarchicalParameterServer, models: [ServedModel], mode: ControlMode, configurationPath: String?,
         metrics: ServerMetrics, pool: LookupThreadPool, batching: LookupBatcher.Options, logger: Logger) {
        self.parameterServer = parameterServer
        self.mode = mode
        self.configurationPath = configurationPath
        self.metrics = metrics
        self.pool = pool
        self.batching = batching
        self.logger = logger
        var state = State()
        for model in models where state.entries[model.name] == nil {
            let deployment = model.prediction == nil ? try? parameterServer.deployment(model: model.name) : nil
            state.entries[model.name] = Entry(model: model, batcher: LookupBatcher(model: model, metrics: metrics, pool: pool,
                                                                                  options: batching),
                                              deployment: deployment)
        }
        self.state = Locked(state)
    }

    /// The models served, by name.
    package var models: [String: ServedModel] { state.withLock { $0.entries.mapValues(\.model) } }

    /// Each model's batcher now, by name.
    package var batchers: [String: LookupBatcher] { state.withLock { $0.entries.mapValues(\.batcher) } }

    /// The model of that name and version ("" or nil: the one served, else "1").
    /// - Throws: `.unknownModel` (with the reason when it was unloaded or failed to load), `.unknownVersion`.
    package func model(_ name: String, version: String? = nil) throws(InferenceError) -> ServedModel {
        try entry(name, version: version).model
    }

    /// The entry served now under `name`; with `hold`, counted as used by
    /// one more request (the caller gives it back) in the same step, so that
    /// a load or unload that replaces it waits for that request.
    private func entry(_ name: String, version: String?, hold: Bool = false) throws(InferenceError) -> Entry {
        try state.withLock { (state) throws(InferenceError) -> Entry in
            guard let entry = state.entries[name] else { throw Self.notServed(name, state) }
            if let version, !version.isEmpty, version != ServedModel.version {
                throw .unknownVersion(model: name, version: version)
            }
            if hold { entry.active.add(1, ordering: .relaxed) }
            return entry
        }
    }

    /// Why `name` is not served: unloaded or failed to load, or unknown.
    private static func notServed(_ name: String, _ state: State) -> InferenceError {
        if let reason = state.unavailable[name] { return .unavailable(model: name, reason: reason) }
        return .unknownModel(name, available: state.entries.keys.sorted())
    }

    /// Requests using the version of `name` served now (0 when none is served).
    func activeRequests(_ name: String) -> Int {
        state.withLock { $0.entries[name] }?.active.load(ordering: .acquiring) ?? 0
    }

    /// Runs `body` with the version of the model served now, which stays
    /// (with its batcher and tables) until `body` returns, even when a load
    /// or unload replaces it meanwhile.
    package func withModel<Value>(_ name: String, version: String? = nil,
                                 _ body: (ServedModel, LookupBatcher) async throws(InferenceError) -> Value) async throws(InferenceError) -> Value {
        let entry = try entry(name, version: version, hold: true)
        defer { entry.active.subtract(1, ordering: .releasing) }
        return try await body(entry.model, entry.batcher)
    }

    /// One model of the repository index.
    package struct IndexEntry: Sendable, Equatable {
        /// The model's name.
        package var name: String
        /// "1" for a model served, else empty.
        package var version: String
        /// `READY`, `UNAVAILABLE` (unloaded, or its load failed), or empty for one never loaded.
        package var state: String
        /// Why it is unavailable.
        package var reason: String
    }

    /// Every model of the configuration file (read again now) and every model
    /// served, by name, with its state, as Triton's index lists them.
    /// - Parameter ready: only the models served.
    package func index(ready: Bool = false) -> [IndexEntry] {
        var names = Set(state.withLock { $0.entries.keys })
        if let configurationPath, let file = try? HPSConfiguration.load(path: configurationPath) {
            names.formUnion(file.models.map(\.name))
        }
        let (served, unavailable) = state.withLock { (Set($0.entries.keys), $0.unavailable) }
        return names.sorted().compactMap { name in
            if served.contains(name) { return IndexEntry(name: name, version: ServedModel.version, state: "READY", reason: "") }
            if ready { return nil }
            if let reason = unavailable[name] { return IndexEntry(name: name, version: "", state: "UNAVAILABLE", reason: reason) }
            return IndexEntry(name: name, version: "", state: "", reason: "")
        }
    }

    /// Loads a model, or a new version of a loaded one, and serves it in place of the old.
    /// - Parameters:
    ///   - name: the model's name.
    ///   - configuration: the model's entry as JSON (an object of the
    ///     configuration's `models` list, as Triton's load takes a `config`
    ///     parameter), or nil to read it from the configuration file.
    /// - Throws: `.modelControl` when loading is not enabled or the model is a
    ///   prediction model, `.loadFailed` with what went wrong (the version
    ///   served before, if any, is still served).
    package func load(_ name: String, configuration: String? = nil) async throws(InferenceError) {
        guard mode == .explicit else {
            throw .modelControl("loading models is off: the server runs with --model-control-mode none; start it with --model-control-mode explicit to load and unload models while it serves")
        }
        let outcome = await onBlockingThread { () -> Result<Entry?, InferenceError> in
            self.changes.withLock { _ in Result { () throws(InferenceError) -> Entry? in try self.loadBlocking(name, configuration: configuration) } }
        }
        if let replaced = try outcome.get() { await retire(replaced) }
    }

    /// Stops serving a model; requests in flight on it finish.
    /// - Throws: `.modelControl` when unloading is not enabled or the model is a prediction model, `.unknownModel`.
    package func unload(_ name: String) async throws(InferenceError) {
        guard mode == .explicit else {
            throw .modelControl("unloading models is off: the server runs with --model-control-mode none; start it with --model-control-mode explicit to load and unload models while it serves")
        }
        let outcome = await onBlockingThread { () -> Result<Entry, InferenceError> in
            self.changes.withLock { _ in
                Result { () throws(InferenceError) -> Entry in
                    let entry = try self.entry(name, version: nil)
                    guard entry.deployment != nil else {
                        throw .modelControl("model \(name) is a prediction model of this server, not a model of the configuration; it cannot be unloaded")
                    }
                    _ = self.parameterServer.unload(model: name)
                    self.state.withLock {
                        $0.entries[name] = nil
                        $0.unavailable[name] = "unloaded"
                    }
                    self.logger.info("unloaded model \(name)")
                    return entry
                }
            }
        }
        await retire(try outcome.get())
    }

    /// Stops the batchers and the background work of every version: the server is shutting down.
    func shutdown() {
        let entries = state.withLock { Array($0.entries.values) }
        for entry in entries {
            entry.batcher.shutdown()
            for task in entry.work.withLock({ $0 }) { task.cancel() }
        }
    }

    // MARK: Loading

    /// Builds the new version and swaps it in, holding `changes`, on a thread that may block.
    /// - Returns: the version replaced.
    private func loadBlocking(_ name: String, configuration json: String?) throws(InferenceError) -> Entry? {
        if let current = state.withLock({ $0.entries[name] }), current.deployment == nil {
            throw .modelControl("model \(name) is a prediction model of this server, not a model of the configuration; it cannot be reloaded")
        }
        let model: ModelConfiguration, baseDirectory: String?
        (model, baseDirectory) = try modelConfiguration(name, json: json)
        let deployment: ModelDeployment
        do {
            (deployment, _) = try parameterServer.load(model, baseDirectory: baseDirectory)
        } catch {
            let reason = "\(error)"
            state.withLock { if $0.entries[name] == nil { $0.unavailable[name] = reason } }
            throw .loadFailed(model: name, reason: reason)
        }
        let devices = deployment.orderedDeviceSessions
        let served = ServedModel(sessions: devices.isEmpty ? [deployment.session] : devices)
        metrics.register(sessions: served.sessions)
        let entry = Entry(model: served, batcher: LookupBatcher(model: served, metrics: metrics, pool: pool, options: batching),
                          deployment: deployment)
        let runner = BlockingRunner { [pool] step in _ = await pool.run(step) }
        entry.work.withLock { tasks in
            tasks = deployment.backgroundWork.map { work in Task { try? await work.run(blocking: runner) } }
        }
        let replaced = state.withLock { state in
            state.unavailable[name] = nil
            return state.entries.updateValue(entry, forKey: name)
        }
        logger.info("loaded model \(name) (generation \(deployment.generation))\(replaced == nil ? "" : ", in place of the version served before")")
        return replaced
    }

    /// The model's entry: parsed from `json` (with the running
    /// configuration's global settings), or read from the configuration file.
    private func modelConfiguration(_ name: String, json: String?) throws(InferenceError) -> (ModelConfiguration, String?) {
        let running = parameterServer.configuration
        if let json {
            // The entry inside a configuration of the running one's global settings, parsed as a whole.
            guard case var .object(document) = running.jsonValue() else {
                throw .loadFailed(model: name, reason: "the running configuration is not a JSON object")
            }
            let entry: JSONValue
            do throws(JSONSyntaxError) {
                entry = try JSONValue.parse(json)
            } catch {
                throw .loadFailed(model: name, reason: "the config parameter is not JSON: \(error)")
            }
            guard entry["model"]?.stringValue == name else {
                throw .loadFailed(model: name, reason: "the config parameter's \"model\" must be \"\(name)\", the model loaded")
            }
            document["models"] = .array([entry])
            do throws(ConfigurationError) {
                let parsed = try HPSConfiguration.parse(json: JSONValue.object(document).serialized(), baseDirectory: running.baseDirectory)
                return (parsed.models[0], running.baseDirectory)
            } catch {
                throw .loadFailed(model: name, reason: "the config parameter is not a model entry of an HPS configuration: \(error.description)")
            }
        }
        guard let configurationPath else {
            throw .loadFailed(model: name, reason: "the server has no configuration file to read the model from; pass its entry as the config parameter")
        }
        let file: HPSConfiguration
        do throws(ConfigurationError) {
            file = try HPSConfiguration.load(path: configurationPath)
        } catch {
            throw .loadFailed(model: name, reason: "the configuration file \(configurationPath) cannot be read: \(error.description)")
        }
        guard let model = file.model(named: name) else {
            throw .loadFailed(model: name, reason: "the configuration file \(configurationPath) has no model \(name); its models are \(file.models.map(\.name).joined(separator: ", "))")
        }
        if file.supportLongLong != running.supportLongLong || file.fuseEmbeddingTable != running.fuseEmbeddingTable {
            logger.warning("the configuration file's global settings changed since the server started; a load takes only the model's entry, the rest takes effect at a restart")
        }
        return (model, file.baseDirectory)
    }

    /// Waits until no request uses a replaced or unloaded version, then stops
    /// its batcher and background work and drops its tables from the stores.
    private func retire(_ entry: Entry) async {
        var waited = Duration.zero
        while entry.active.load(ordering: .acquiring) > 0 {
            try? await Task.sleep(for: .milliseconds(2))
            waited += .milliseconds(2)
            if waited == .seconds(30) {
                logger.warning("model \(entry.model.name): requests still use the old version after 30 s; its tables are dropped when they finish")
            }
        }
        entry.batcher.shutdown()
        for task in entry.work.withLock({ $0 }) { task.cancel() }
        metrics.unregister(sessions: entry.model.sessions)
        guard let deployment = entry.deployment else { return }
        let problems = await onBlockingThread { self.changes.withLock { _ in self.parameterServer.dropTables(of: deployment) } }
        for problem in problems { logger.warning("model \(entry.model.name): \(problem)") }
    }

    /// Runs `body` on a thread of its own (loading reads files and waits on
    /// stores), returning its value.
    private func onBlockingThread<Value: Sendable>(_ body: @escaping @Sendable () -> Value) async -> Value {
        let box = Locked<Value?>(nil)
        await BlockingRunner.dedicatedThread.run { box.withLock { $0 = body() } }
        return box.withLock { $0! }
    }
}
