import ArgumentParser
import HPS

/// `hps-load`: a bounded load of KServe v2 inference requests against a
/// server on this machine, with per-request latency, verified answers and
/// the server's memory before and after.
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hps-load",
        abstract: "Send a bounded load of HPS inference requests (seed model, random keys) to a KServe v2 server on loopback.",
        discussion: """
            Open loop with --rate (latency from each request's scheduled send time, so a slow server cannot hide \
            behind the requests it delayed); closed loop without it (each connection sends as soon as it is answered). \
            Every answer is checked: status 200 and OUTPUT0's size, and with --model-dir one random key's vector \
            against the model files. seed-predict asks the prediction model that hps serve --demo serves as \
            <tables>_table_dense (KEYS0…KEYS<tables-1>, INT64 [samples, keys per sample] → OUTPUT0, FP32 [samples, 1]); \
            its answers are checked for status, size and that every prediction is a finite number: no file holds \
            the predictions to compare them with, so --model-dir does not apply to it.
            """
    )

    @Option(help: "The server's address (loopback only).")
    var host = "127.0.0.1"
    @Option(help: "The server's KServe v2 port: HTTP (8000) or gRPC (8001), as --transport says.")
    var port = 8000
    @Option(help: "The model to ask (default: <tables>_table, the HPS model of hps serve --demo; <tables>_table_dense for seed-predict).")
    var model: String?
    @Option(help: "Transport: http (binary tensor extension over HTTP/1.1) or grpc (ModelInfer with raw contents over HTTP/2).")
    var transport = "http"
    @Option(help: "Request kind: one-sample (26 keys × each table, their vectors), seed-batch (--batch-size samples, their vectors) or seed-predict (--batch-size samples, one prediction each).")
    var kind = "one-sample"
    @Option(help: "Requests a second (open loop); without it, closed loop.")
    var rate: Double?
    @Option(help: "Seconds to run (at most 3600).")
    var duration: Double = 10
    @Option(help: "Keep-alive connections.")
    var connections = 8
    @Option(help: "Event-loop threads of the load generator.")
    var threads = 1
    @Option(help: "Tables of the seed model.")
    var tables = 8
    @Option(help: "Keys per table of the seed model.")
    var vocab = 10_000
    @Option(help: "Keys per sample and table.")
    var keysPerSample = 26
    @Option(help: "Floats per vector.")
    var dim = 128
    @Option(help: "Samples of a seed-batch or seed-predict request.")
    var batchSize = 256
    @Option(help: "The model's folder (hps generate --output), to check one vector of each answer against its file.")
    var modelDir: String?
    @Option(help: "The server's process id, to report its resident memory (VmRSS) before and after.")
    var serverPid: Int32?
    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard ["127.0.0.1", "localhost", "::1"].contains(host) || host.hasPrefix("127.") else {
            throw ValidationError("--host must be a loopback address (127.0.0.0/8, localhost or ::1), not \(host)")
        }
        guard duration > 0 && duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600] seconds, not \(duration)") }
        guard connections >= 1 && connections <= 256 else { throw ValidationError("--connections must be 1…256, not \(connections)") }
        if let rate, !(rate > 0 && rate <= 1_000_000) { throw ValidationError("--rate must be in (0, 1000000], not \(rate)") }
        guard RequestKind.names.contains(kind) else {
            throw ValidationError("--kind must be one of \(RequestKind.names.joined(separator: ", ")), not \(kind)")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, not \(batchSize)") }
        if kind == "seed-predict", modelDir != nil {
            throw ValidationError("--model-dir checks vectors against the model files; seed-predict answers predictions, which no file holds: leave --model-dir out")
        }
        #if Serving
        guard ["http", "grpc"].contains(transport) else { throw ValidationError("--transport must be http or grpc, not \(transport)") }
        #else
        guard transport == "http" else {
            throw ValidationError("--transport must be http in this build (grpc needs the Serving trait), not \(transport)")
        }
        #endif
    }

    func run() async throws {
        LargeBufferReuse.enable()
        guard let requestKind = RequestKind(name: kind, batchSize: batchSize, tables: tables, vocab: vocab,
                                            keysPerSample: keysPerSample, dim: dim) else {
            throw ValidationError("--kind must be one of \(RequestKind.names.joined(separator: ", ")), not \(kind)")
        }
        let model = self.model ?? requestKind.demoModel
        let expected = try modelDir.map { try ExpectedRows(directory: $0, tables: tables, dim: dim) }
        let transport: any LoadTransport
        #if Serving
        transport = self.transport == "grpc" ? GRPCTransport(host: host, port: port, model: model)
            : HTTPTransport(host: host, port: port, model: model, threads: threads)
        #else
        transport = HTTPTransport(host: host, port: port, model: model, threads: threads)
        #endif
        let memoryBefore = serverPid.flatMap(ServerMemory.residentBytes(pid:))
        let load = LoadRun(transport: transport, kind: requestKind, connections: connections, rate: rate,
                           duration: .nanoseconds(Int64(duration * 1e9)), expected: expected)
        let report: LoadRun.Report
        do {
            report = try await load.run()
        } catch {
            try? await transport.shutdown()
            throw ValidationError("the load could not run against \(host):\(port): \(error)")
        }
        try await transport.shutdown()
        let memoryAfter = serverPid.flatMap(ServerMemory.residentBytes(pid:))
        let sorted = report.latencies.sorted()
        let p = { (q: Double) in report.percentile(q, sorted: sorted) }
        let sortedDelays = report.sendDelays.sorted()
        let lag = { (q: Double) in report.percentile(q, sorted: sortedDelays) }
        let mode = rate.map { "open loop at \(Int($0)) req/s" } ?? "closed loop"
        if json {
            var fields: [(String, JSONValue)] = [
                ("kind", .string(kind)), ("mode", .string(rate == nil ? "closed" : "open")),
                ("target_rate", rate.map { .double($0) } ?? .null),
                ("connections", .integer(Int64(connections))), ("seconds", .double(report.elapsed.seconds)),
                ("requests", .integer(Int64(report.requests))), ("failures", .integer(Int64(report.failures))),
                ("throughput", .double(report.throughput)),
                ("p50_us", .double(p(0.5))), ("p99_us", .double(p(0.99))), ("p999_us", .double(p(0.999))),
                ("max_us", .double(p(1))),
                ("send_lag_p50_us", .double(lag(0.5))), ("send_lag_p99_us", .double(lag(0.99))),
                ("checked_vectors", .bool(expected != nil)),
            ]
            if let memoryBefore { fields.append(("server_rss_before_bytes", .integer(Int64(memoryBefore)))) }
            if let memoryAfter { fields.append(("server_rss_after_bytes", .integer(Int64(memoryAfter)))) }
            if !report.failureReasons.isEmpty { fields.append(("failure_reasons", .array(report.failureReasons.map { .string($0) }))) }
            print(JSONValue.object(JSONObject(fields)).serialized())
        } else {
            print("\(kind), \(mode), \(connections) connections, \(String(format1: report.elapsed.seconds)) s")
            print("requests \(report.requests), failures \(report.failures), throughput \(String(format1: report.throughput)) req/s")
            print("latency µs: p50 \(String(format1: p(0.5))), p99 \(String(format1: p(0.99))), p99.9 \(String(format1: p(0.999))), max \(String(format1: p(1)))")
            if rate != nil {
                print("send lag behind the schedule µs (included above): p50 \(String(format1: lag(0.5))), p99 \(String(format1: lag(0.99)))")
            }
            if let memoryBefore, let memoryAfter {
                print("server RSS: before \(memoryBefore >> 20) MiB, after \(memoryAfter >> 20) MiB")
            }
            for reason in report.failureReasons { print("failure: \(reason)") }
        }
        if report.failures > 0 { throw ExitCode(2) }
    }
}

extension String {
    /// `value` with one decimal.
    init(format1 value: Double) {
        let tenths = (value * 10).rounded()
        self = "\(Int(tenths) / 10).\(abs(Int(tenths) % 10))"
    }
}
