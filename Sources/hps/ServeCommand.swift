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
            Over gRPC, inputs come in raw_input_contents (as tritonclient.grpc sends them) or typed contents, \
            OUTPUT0 goes back in raw_output_contents. \
            SIGTERM or SIGINT stops it gracefully: new connections are refused, requests in flight are answered.
            """
    )

    @Option(help: "The HPS JSON configuration.")
    var config: String
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

    func run() async throws {
        try await reportingErrorsAsync {
            var options = HPSServer.Options()
            options.host = host
            options.httpPort = httpPort
            options.grpcPort = grpcPort
            options.metricsPort = metricsPort
            options.maxBodyBytes = maxBodyBytes
            for (name, port) in [("--http-port", httpPort), ("--grpc-port", grpcPort), ("--metrics-port", metricsPort)] where !(0...65535).contains(port) {
                throw ValidationError("\(name) must be between 0 and 65535, not \(port)")
            }
            if let authTokenFile {
                let text = try Self.readTextFile(authTokenFile)
                let token = Substring(text).trimmingCharacters(in: "\n").trimmingCharacters(in: "\r").trimmingCharacters(in: " ")
                guard !token.isEmpty else { throw ValidationError("the token file \(authTokenFile) is empty") }
                options.token = String(token)
            }
            var logger = Logger(label: "hps")
            logger.logLevel = .notice
            let configuration = try HPSConfiguration.load(path: config)
            let parameterServer = try HierarchicalParameterServer(configuration: configuration,
                                                                  parallelism: threads ?? availableCores)
            for warning in parameterServer.warnings { note("hps: warning: \(warning)") }
            let server = try HPSServer(parameterServer: parameterServer, options: options)
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
