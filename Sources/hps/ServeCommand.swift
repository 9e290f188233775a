#if Serving
import ArgumentParser
import HPS
import HPSDemo
import HPSCUDA
import HPSServer
import Glibc
import Logging

/// `hps serve`: the KServe v2 HTTP and gRPC servers, as Triton serves HPS models.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a configuration's models over the KServe v2 HTTP and gRPC protocols (Triton's clients work), with Prometheus metrics.",
        discussion: """
            Each model takes KEYS (INT64 or INT32, all tables' keys concatenated) and NUMKEYS (INT32, keys per table) \
            and returns OUTPUT0 (FP32, [keys, vec size]; [floats] when the tables' vec sizes differ). \
            With --demo, instead of --config: the seed notebook's model (sizes as in hps demo) is generated into a \
            temporary folder and served twice: as the HPS model <tables>_table (KEYS, NUMKEYS → vectors) and as \
            <tables>_table_dense (KEYS0…KEYS<n-1>, INT64 or INT32 [batch, keys per sample] → OUTPUT0, FP32 [batch, 1] \
            predictions of the lookups → Dense(1)). \
            Over gRPC, inputs come in raw_input_contents (as tritonclient.grpc sends them) or typed contents, \
            OUTPUT0 goes back in raw_output_contents. \
            With --device auto or gpu, every model with gpucache: true is served from its GPU tables on the GPUs \
            of its deployed_device_list (requests spread over them), and the --demo prediction model runs its \
            Dense head on the GPU; the other models, and every model with --device cpu or when auto finds no \
            usable GPU (it says why), are served from the CPU. \
            SIGTERM or SIGINT stops it gracefully: new connections are refused, requests in flight are answered.
            """
    )

    @Option(help: "The HPS JSON configuration.")
    var config: String?
    @Option(help: "Where lookups run: auto (the GPUs of each gpucache model when a GPU loads, else the CPU, saying why), cpu, or gpu (exits 1 without a usable GPU).")
    var device: String = "auto"
    @Flag(help: "Serve the seed notebook's model (see --tables, --vocab, --dim, …) and its Dense(1) predictions, instead of --config.")
    var demo = false
    @OptionGroup(title: "Sizes of the --demo model")
    var sizes: SizeOptions
    @Option(help: "The address to listen on (loopback unless given; 0.0.0.0 for every interface).")
    var host: String = "127.0.0.1"
    @Option(name: .customLong("http-port"), help: "The KServe v2 HTTP port (0: a free one).")
    var httpPort: Int = 8000
    @Option(name: .customLong("grpc-port"), help: "The KServe v2 gRPC port, inference.GRPCInferenceService (0: a free one).")
    var grpcPort: Int = 8001
    @Option(name: .customLong("metrics-port"), help: "The Prometheus metrics port, GET /metrics (0: a free one).")
    var metricsPort: Int = 8002
    @Option(name: .customLong("auth-token-file"),
            help: "A file holding a token; requests must then send \"Authorization: Bearer <token>\" (over gRPC the metadata \"authorization: Bearer <token>\"; health excepted).")
    var authTokenFile: String?
    @Option(name: .customLong("max-body-bytes"), help: "The largest request body accepted (larger: 413; over gRPC, the largest request message: RESOURCE_EXHAUSTED).")
    var maxBodyBytes: Int = 64 << 20

    @Option(name: .customLong("grpc-window-bytes"), help: "The HTTP/2 flow-control window the gRPC port grants each connection and call, in bytes (65535 to 2147483647; 65535 makes a large request wait for a window update every 64 KB).")
    var grpcWindowBytes: Int = HPSServer.Options().grpcWindowBytes
    @Option(name: .customLong("request-read-timeout"),
            help: "Seconds an HTTP client may take to send each whole request, and a keep-alive connection may stay idle, before its connection is closed.")
    var requestReadTimeout: Double = 60
    @Option(help: "Threads for loading and for each lookup (default: every core).")
    var threads: Int?
    @Flag(name: .customLong("no-dynamic-batching"),
          help: "Look up every request on its own, instead of merging the requests that arrive while a lookup runs.")
    var noDynamicBatching = false
    @Option(name: .customLong("max-queue-delay-us"),
            help: "Microseconds a lookup that starts from idle waits for more requests to merge with (dynamic batching).")
    var maxQueueDelayMicroseconds: Int = 0
    @Option(name: .customLong("inline-lookup-keys"),
            help: "The most keys a lookup of an in-memory model may have to run in the request's task instead of on the lookup threads (0: never).")
    var inlineLookupKeys: Int = 4096
    @Option(name: .customLong("max-queued-requests"),
            help: "The most requests of one model that may wait for a lookup; more are refused (HTTP 503, gRPC UNAVAILABLE).")
    var maxQueuedRequests: Int = 1024
    @Option(name: .customLong("cpu-lookups"),
            help: "How many lookups a model served from the CPU runs at once before requests queue and merge (default: the cores this process may use). A GPU runs one at a time.")
    var cpuLookups: Int?
    @Option(name: .customLong("lookup-threads"),
            help: "Threads for the lookups that may block (Redis, RocksDB, mapped files, GPUs) and large ones (default: every core).")
    var lookupThreads: Int?
    @Option(help: "How a model on several GPUs spreads its lookups: least-busy or round-robin.")
    var spread: String = LookupBatcher.Spreading.leastBusy.rawValue
    @Option(name: .customLong("model-control-mode"),
            help: "none: every model of --config is loaded at start and stays. explicit: the models of --load-model are loaded at start, and models are loaded (read again from --config) and unloaded while serving through Triton's repository API (POST v2/repository/models/<name>/load and /unload, over HTTP and gRPC).")
    var modelControlMode: String = ModelRepository.ControlMode.none.rawValue
    @Option(name: .customLong("load-model"), parsing: .singleValue,
            help: "With --model-control-mode explicit: a model of --config to load at start (repeatable; \"*\" for every model). Without it none is loaded until asked.")
    var loadModels: [String] = []
    @Option(name: .customLong("kafka-setting"), parsing: .singleValue,
            help: "A librdkafka consumer setting for the update consumers, NAME=VALUE (repeatable), e.g. fetch.wait.max.ms=10; it overrides the one HugeCTR's settings give.")
    var kafkaSettings: [String] = []

    func run() async throws {
        try await reportingErrorsAsync {
            var options = HPSServer.Options()
            options.host = host
            options.httpPort = httpPort
            options.grpcPort = grpcPort
            options.metricsPort = metricsPort
            options.maxBodyBytes = maxBodyBytes
            guard (65_535...Int(Int32.max)).contains(grpcWindowBytes) else {
                throw ValidationError("--grpc-window-bytes must be between 65535 and 2147483647 (HTTP/2's limits), not \(grpcWindowBytes)")
            }
            options.grpcWindowBytes = grpcWindowBytes
            guard requestReadTimeout > 0 && requestReadTimeout <= 86_400 else {
                throw ValidationError("--request-read-timeout must be more than 0 and at most 86400 seconds, not \(requestReadTimeout)")
            }
            options.requestReadTimeout = .milliseconds(Int64((requestReadTimeout * 1000).rounded()))
            options.batching.enabled = !noDynamicBatching
            guard (0...1_000_000).contains(maxQueueDelayMicroseconds) else {
                throw ValidationError("--max-queue-delay-us must be between 0 and 1000000, not \(maxQueueDelayMicroseconds)")
            }
            options.batching.maxQueueDelay = .microseconds(maxQueueDelayMicroseconds)
            guard inlineLookupKeys >= 0 else { throw ValidationError("--inline-lookup-keys must not be negative, not \(inlineLookupKeys)") }
            options.batching.inlineKeys = inlineLookupKeys
            guard maxQueuedRequests >= 1 else { throw ValidationError("--max-queued-requests must be at least 1, not \(maxQueuedRequests)") }
            options.batching.maxQueuedRequests = maxQueuedRequests
            if let cpuLookups {
                guard cpuLookups >= 1 else { throw ValidationError("--cpu-lookups must be at least 1, not \(cpuLookups)") }
                options.batching.cpuLookups = cpuLookups
            }
            guard let spreading = LookupBatcher.Spreading(rawValue: spread) else {
                throw ValidationError("--spread must be least-busy or round-robin, not \(spread)")
            }
            options.batching.spreading = spreading
            if let lookupThreads {
                guard lookupThreads >= 1 else { throw ValidationError("--lookup-threads must be at least 1, not \(lookupThreads)") }
                options.lookupThreads = lookupThreads
            }
            guard let mode = ModelRepository.ControlMode(rawValue: modelControlMode) else {
                throw ValidationError("--model-control-mode must be none or explicit, not \(modelControlMode)")
            }
            options.modelControl = mode
            options.configurationPath = config
            if !loadModels.isEmpty {
                guard mode == .explicit else {
                    throw ValidationError("--load-model needs --model-control-mode explicit (with none, every model of --config is loaded)")
                }
                guard config != nil else { throw ValidationError("--load-model names models of --config; give --config") }
            }
            guard let target = ServeDevice(rawValue: device) else {
                throw ValidationError("--device must be auto, cpu or gpu, not \(device)")
            }
            for (name, port) in [("--http-port", httpPort), ("--grpc-port", grpcPort), ("--metrics-port", metricsPort)] where !(0...65535).contains(port) {
                throw ValidationError("\(name) must be between 0 and 65535, not \(port)")
            }
            if let authTokenFile {
                let text = try Self.readTextFile(authTokenFile)
                let token = Substring(text).trimmingCharacters(in: "\n").trimmingCharacters(in: "\r").trimmingCharacters(in: " ")
                guard !token.isEmpty else { throw ValidationError("the token file \(authTokenFile) is empty") }
                if let warning = Self.tokenFilePermissionWarning(authTokenFile) { note("hps: warning: \(warning)") }
                options.token = String(token)
            }
            LargeBufferReuse.enable()
            var logger = Logger(label: "hps")
            logger.logLevel = .notice
            let parameterServer: HierarchicalParameterServer
            var predictionModels: [(name: String, model: any Predictor)] = []
            switch (config, demo) {
            case let (config?, false):
                parameterServer = try hierarchy(try HPSConfiguration.load(path: config), target: target)
            case (nil, true):
                let seed = try sizes.model()
                let directory = try TemporaryDirectory(prefix: "hps-serve-demo")
                defer { directory.remove() }  // loaded into the hash map and the GPU tables, the files are no longer read
                let path = try seed.write(to: directory.path)
                parameterServer = try hierarchy(try HPSConfiguration.load(path: path), target: target)
                let dense = seed.denseHead
                let name = seed.modelName + "_dense"
                if let session = parameterServer.deviceSessions(model: seed.modelName).first {
                    predictionModels = [(name, try Self.gpuPredictionModel(session: session, dense: dense, keysPerSample: seed.keysPerSample))]
                } else {
                    let session = try parameterServer.session(model: seed.modelName)
                    predictionModels = [(name, try PredictionModel(session: session, dense: dense, keysPerSample: seed.keysPerSample))]
                }
            case (_?, true):
                throw ValidationError("give either --config or --demo, not both")
            case (nil, false):
                throw ValidationError("give --config FILE (an HPS configuration), or --demo to serve the seed model")
            }
            for warning in parameterServer.warnings { note("hps: warning: \(warning)") }
            let updates = try UpdateFollowing.consumers(of: parameterServer, logger: logger, settings: try kafkaSettingPairs())
            let server = try HPSServer(parameterServer: parameterServer, options: options, predictionModels: predictionModels,
                                       updates: updates)
            for (name, devices) in server.devices.sorted(by: { $0.key < $1.key }) where devices.contains(where: { $0 != nil }) {
                note("hps: model \(name) is served from GPU \(devices.compactMap { $0 }.map(String.init).joined(separator: ", "))")
            }
            try await server.run(logger: logger) { what, host, port in
                switch what {
                case "http": note("hps: KServe v2 HTTP on http://\(host):\(port)/v2")
                case "grpc": note("hps: KServe v2 gRPC on grpc://\(host):\(port)")
                default: note("hps: metrics on http://\(host):\(port)/metrics")
                }
            }
            note("hps: stopped")
        }
    }

    /// Builds the tiers and sessions of `configuration` for `--device`: with
    /// `gpu`, the GPU tables of every model with `gpucache: true` (or why
    /// there are none, thrown); with `auto`, the same when a GPU serves, else
    /// the CPU sessions only, with one line saying why.
    private func hierarchy(_ configuration: HPSConfiguration, target: ServeDevice) throws -> HierarchicalParameterServer {
        let parallelism = threads ?? availableCores
        // With explicit model control, the models of --load-model ("*": all); else every model.
        let loading: [String]? = modelControlMode == ModelRepository.ControlMode.explicit.rawValue && config != nil
            ? (loadModels.contains("*") ? nil : loadModels) : nil
        func onTheCPU() throws -> HierarchicalParameterServer {
            try HierarchicalParameterServer(configuration: configuration, backends: Backends.all, parallelism: parallelism, loading: loading)
        }
        guard target != .cpu else { return try onTheCPU() }
        let gpuModels = configuration.models.filter(\.gpuCache)
        let factory: GPUCacheFactory
        do {
            guard !gpuModels.isEmpty else {
                throw ServeDeviceError.noGPUModel(models: configuration.models.map(\.name))
            }
            // Every device asked for, before a table is loaded.
            for device in Set(gpuModels.flatMap(\.effectiveDevices)).sorted() { _ = try CUDADevice(index: device) }
            factory = GPUCacheFactory()
        } catch {
            guard target == .auto else { throw (error as? ServeDeviceError) ?? .noGPU(reason: String(describing: error)) }
            let server = try onTheCPU()
            note("hps: serving from the CPU because \(error)")
            return server
        }
        do {
            return try HierarchicalParameterServer(configuration: configuration, backends: Backends.all, parallelism: parallelism, gpu: factory,
                                                   loading: loading)
        } catch {
            guard target == .auto else { throw error }
            let server = try onTheCPU()
            note("hps: serving from the CPU because the GPU tables could not be made: \(error)")
            return server
        }
    }

    /// `--kafka-setting` as (name, value) pairs.
    private func kafkaSettingPairs() throws -> [(String, String)] {
        try kafkaSettings.map { setting in
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw ValidationError("--kafka-setting must be NAME=VALUE (a librdkafka consumer setting), not \"\(setting)\"")
            }
            return (String(setting[..<equals]), String(setting[setting.index(after: equals)...]))
        }
    }

    /// The seed model's Dense head on `session`'s GPU (HPSCUDA's GPUPredictionModel).
    static func gpuPredictionModel(session: LookupSession, dense: DenseLayer, keysPerSample: Int) throws -> any Predictor {
        try GPUPredictionModel(session: session, dense: dense, keysPerSample: keysPerSample)
    }

    /// A sentence when the token file can be read or written by users other
    /// than its owner and group (the token is a password), else nil.
    static func tokenFilePermissionWarning(_ path: String) -> String? {
        guard let mode = filePermissionBits(path).map({ $0 & 0o777 }) else { return nil }
        guard mode & 0o006 != 0 else { return nil }
        return "the token file \(path) can be \(mode & 0o002 != 0 ? "written" : "read") by every user of this machine (mode \(String(mode, radix: 8))); chmod 600 \(path)"
    }

    /// A small text file's contents.
    static func readTextFile(_ path: String) throws -> String {
        do throws(ModelFileError) {
            return String(decoding: try OpenFile.readAll(path: path), as: UTF8.self)
        } catch {
            guard case let .io(_, _, reason) = error else { throw ValidationError("cannot read the token file \(path): \(error)") }
            throw ValidationError("cannot read the token file \(path): \(reason)")
        }
    }
}
/// HPSCUDA's prediction head, served through `Predictor`.
/// `hps serve --device`.
enum ServeDevice: String {
    case auto, cpu, gpu
}

/// Why `hps serve --device gpu` cannot serve from a GPU.
enum ServeDeviceError: Error, CustomStringConvertible {
    /// No model of the configuration asks for a GPU cache.
    case noGPUModel(models: [String])
    /// No GPU loads, or the GPU tables could not be made.
    case noGPU(reason: String)

    var description: String {
        switch self {
        case let .noGPUModel(models):
            "no model of the configuration (\(models.joined(separator: ", "))) has gpucache: true; set it on the models to serve from a GPU"
        case let .noGPU(reason):
            "--device gpu cannot serve from a GPU: \(reason); serve from the CPU with --device cpu or auto"
        }
    }
}
#endif
