import Foundation
import Glibc
import HPSCUDA
import Testing

@testable import HPS

/// `hps serve` refuses bad flags with one sentence before it listens, and
/// picks the GPU or the CPU as `--device` says.
/// (The server itself is tested in HPSServerTests and Tests/python.)
struct ServeCLITests {
    /// The small seed model, served.
    static let demo = ["serve", "--demo", "--tables", "2", "--vocab", "100", "--dim", "8", "--keys-per-sample", "4",
                       "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]

    /// Whether a GPU loads on this machine.
    static var hasGPU: Bool { (try? CUDADevice(index: 0)) != nil }

    @Test("hps serve --device gpu without a GPU exits 1 with one sentence saying why", .enabled(if: !hasGPU))
    func deviceGPUWithoutGPU() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(Self.demo + ["--device", "gpu"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.count == 1, "\(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("hps: --device gpu cannot serve from a GPU: no GPU"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("--device cpu or auto"))
        #expect(!outcome.stderr.contains("KServe"), "it does not listen")
    }

    @Test("hps serve --device auto without a GPU serves from the CPU and says why in one line", .enabled(if: !hasGPU))
    func deviceAutoFallsBack() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let stderr = try Self.serveUntilListening(Self.demo + ["--device", "auto"], in: directory.path)
        let lines = stderr.split(separator: "\n")
        let why = lines.filter { $0.hasPrefix("hps: serving from the CPU because") }
        #expect(why.count == 1, "\(stderr)")
        #expect(why.first?.contains("no GPU") == true, "\(stderr)")
        #expect(!lines.contains { $0.contains("served from GPU") })
        #expect(lines.contains { $0.hasPrefix("hps: KServe v2 HTTP on http://127.0.0.1:") })
        #expect(lines.last == "hps: stopped", "SIGTERM stops it gracefully")
    }

    @Test("hps serve --device cpu serves from the CPU without a word about GPUs")
    func deviceCPU() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let stderr = try Self.serveUntilListening(Self.demo + ["--device", "cpu"], in: directory.path)
        #expect(!stderr.contains("GPU"), "\(stderr)")
        #expect(stderr.contains("hps: KServe v2 HTTP on"))
    }

    @Test("hps serve with an unknown --device, --spread or --max-queued-requests exits 1 naming the flag",
          arguments: [(["--device", "tpu"], "--device must be auto, cpu or gpu, not tpu"),
                      (["--spread", "random"], "--spread must be least-busy or round-robin, not random"),
                      (["--max-queued-requests", "0"], "--max-queued-requests must be at least 1, not 0")])
    func badServingFlags(flags: [String], message: String) throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(Self.demo + flags, in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.count == 1, "\(outcome.stderr)")
        #expect(outcome.stderr.contains(message), "\(outcome.stderr)")
    }

    /// Runs `hps arguments…` until it says it listens over HTTP, then stops it
    /// with SIGTERM; returns its stderr.
    static func serveUntilListening(_ arguments: [String], in directory: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try CLITests.executable())
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errPath = joinPath(directory, "stderr-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: errPath, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory])
        }
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        var stderr = ""
        for _ in 0..<600 where process.isRunning {
            stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            if stderr.contains("hps: KServe v2 HTTP on") { break }
            usleep(100_000)
        }
        try #require(stderr.contains("hps: KServe v2 HTTP on"), "hps serve did not listen: \(stderr)")
        process.terminate()  // SIGTERM: a graceful shutdown
        process.waitUntilExit()
        try err.close()
        #expect(process.terminationStatus == 0)
        return try String(contentsOfFile: errPath, encoding: .utf8)
    }

    @Test("hps serve with a missing configuration exits 1 naming the file")
    func missingConfiguration() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(["serve", "--config", "nope.json", "--http-port", "0", "--metrics-port", "0"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.count == 1)
        #expect(outcome.stderr.contains("nope.json"))
    }

    @Test("hps serve with a missing token file exits 1 naming it")
    func missingTokenFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(["serve", "--config", "hps.json", "--auth-token-file", "no-token"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("token file no-token"))
    }

    @Test("a token file every user may read is a warning naming the chmod; one only its owner reads is not")
    func worldReadableTokenFile() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let path = directory.path + "/token"
        let file = try #require(fopen(path, "w"))
        fputs("s3cret\n", file)
        fclose(file)
        chmod(path, 0o644)
        // The configuration does not exist: the run ends after the token's checks.
        let open = try CLITests().hps(["serve", "--config", "nope.json", "--auth-token-file", "token"], in: directory.path)
        #expect(open.status == 1)
        #expect(open.stderr.contains("hps: warning: the token file token can be read by every user of this machine (mode 644); chmod 600 token"))
        #expect(!open.stderr.contains("s3cret"))
        chmod(path, 0o600)
        let closed = try CLITests().hps(["serve", "--config", "nope.json", "--auth-token-file", "token"], in: directory.path)
        #expect(closed.status == 1)
        #expect(!closed.stderr.contains("token file token can be"))
    }

    @Test("hps serve with a port out of range exits 1 naming the flag")
    func portOutOfRange() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(["serve", "--config", "hps.json", "--http-port", "70000"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("--http-port must be between 0 and 65535"))
    }

    @Test("hps serve with a gRPC window outside HTTP/2's limits exits 1 naming the flag", arguments: ["1024", "2147483648"])
    func grpcWindowOutOfRange(bytes: String) throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(["serve", "--config", "hps.json", "--grpc-window-bytes", bytes], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("--grpc-window-bytes must be between 65535 and 2147483647 (HTTP/2's limits), not \(bytes)"))
    }
}
