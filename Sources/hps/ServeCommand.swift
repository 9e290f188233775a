#if Serving
import ArgumentParser
import HPS
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
            SIGTERM or SIGINT stops it gracefully: new connections are refused, requests in flight are answered.
            """
    )

    @Option(help: "The HPS JSON configuration.")
    var config: String?
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
    @Option(help: "Threads for loading and for each lookup (default: every core).")
    var threads: Int?
    @Flag(name: .customLong("no-dynamic-batching"),
          help: "Look up every request on its own, instead of merging the requests that arrive while a lookup runs.")
    var noDynamicBatching = false
    @Option(name: .customLong("max-queue-delay-us"),
            help: "Microseconds a lookup that starts from idle waits for more requests to merge with (dynamic batching).")
    var maxQueueDelayMicroseconds: Int = 0
    @Option(name: .customLong("inline-lookup-keys"),
            help: "The most keys a lookup from idle may have to run in the request's task instead of on Dispatch's pool (0: never).")
    var inlineLookupKeys: Int = 4096

    func run() async throws {
        try await reportingErrorsAsync {
            var options = HPSServer.Options()
            options.host = host
            options.httpPort = httpPort
            options.grpcPort = grpcPort
            options.metricsPort = metricsPort
            options.maxBodyBytes = maxBodyBytes
            options.batching.enabled = !noDynamicBatching
            guard (0...1_000_000).contains(maxQueueDelayMicroseconds) else {
                throw ValidationError("--max-queue-delay-us must be between 0 and 1000000, not \(maxQueueDelayMicroseconds)")
            }
            options.batching.maxQueueDelay = .microseconds(maxQueueDelayMicroseconds)
            guard inlineLookupKeys >= 0 else { throw ValidationError("--inline-lookup-keys must not be negative, not \(inlineLookupKeys)") }
            options.batching.inlineKeys = inlineLookupKeys
            for (name, port) in [("--http-port", httpPort), ("--grpc-port", grpcPort), ("--metrics-port", metricsPort)] where !(0...65535).contains(port) {
                throw ValidationError("\(name) must be between 0 and 65535, not \(port)")
            }
            if let authTokenFile {
                let text = try Self.readTextFile(authTokenFile)
                let token = Substring(text).trimmingCharacters(in: "\n").trimmingCharacters(in: "\r").trimmingCharacters(in: " ")
                guard !token.isEmpty else { throw ValidationError("the token file \(authTokenFile) is empty") }
                options.token = String(token)
            }
            LargeBufferReuse.enable()
            var logger = Logger(label: "hps")
            logger.logLevel = .notice
            let parameterServer: HierarchicalParameterServer
            var predictionModels: [(name: String, model: PredictionModel)] = []
            switch (config, demo) {
            case let (config?, false):
                parameterServer = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: config),
                                                                  parallelism: threads ?? availableCores)
            case (nil, true):
                let seed = try sizes.model()
                let directory = try TemporaryDirectory(prefix: "hps-serve-demo")
                defer { directory.remove() }  // loaded into the hash map, the files are no longer read
                let path = try seed.write(to: directory.path)
                parameterServer = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path),
                                                                  parallelism: threads ?? availableCores)
                let session = try parameterServer.session(model: seed.modelName)
                predictionModels = [(seed.modelName + "_dense", try PredictionModel(session: session, seed: seed))]
            case (_?, true):
                throw ValidationError("give either --config or --demo, not both")
            case (nil, false):
                throw ValidationError("give --config FILE (an HPS configuration), or --demo to serve the seed model")
            }
            for warning in parameterServer.warnings { note("hps: warning: \(warning)") }
            let server = try HPSServer(parameterServer: parameterServer, options: options, predictionModels: predictionModels)
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

    /// A small text file's contents.
    static func readTextFile(_ path: String) throws -> String {
        guard let file = fopen(path, "rb") else {
            throw ValidationError("cannot read the token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
#endif
