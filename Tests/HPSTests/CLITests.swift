import Foundation
import Testing

@testable import HPS

/// The `hps` executable, run as a real process.
///
/// It is found next to the test bundle (both are products of one build), so
/// these tests fail, not skip, when it was not built.
struct CLITests {
    /// What a run of `hps` did.
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String

        /// stderr's lines, without the trailing empty one.
        var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stderr.hasSuffix("\n") ? 1 : 0).map { $0 } }
    }

    /// The path of the `hps` executable beside this test process's own.
    static func executable() throws -> String {
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("hps").path
        try #require(FileManager.default.isExecutableFile(atPath: path),
                     "the hps executable was not found at \(path); build it with the tests (swift build --build-tests)")
        return path
    }

    /// Runs `hps arguments…` to completion, its output going to files in `directory`.
    func hps(_ arguments: [String], in directory: String) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.executable())
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let id = UUID().uuidString
        let outPath = joinPath(directory, "stdout-\(id)"), errPath = joinPath(directory, "stderr-\(id)")
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
              FileManager.default.createFile(atPath: errPath, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory])
        }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Outcome(status: process.terminationStatus,
                       stdout: try String(contentsOfFile: outPath, encoding: .utf8),
                       stderr: try String(contentsOfFile: errPath, encoding: .utf8))
    }

    /// A number of a parsed JSON value.
    private func number(_ value: JSONValue?) -> Double? {
        switch value {
        case let .double(d)?: d
        case let .integer(i)?: Double(i)
        case let .unsigned(u)?: Double(u)
        default: nil
        }
    }

    /// `hps generate` of the small two-table model into `directory/model`.
    private func generate(in directory: String) throws -> String {
        let output = joinPath(directory, "model")
        let outcome = try hps(["generate", "--output", output, "--tables", "2", "--vocab", "100", "--dim", "4"], in: directory)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        return output
    }

    @Test("the hps executable is built beside the tests")
    func executableExists() throws {
        let path = try Self.executable()
        #expect(path.hasSuffix("/hps"))
    }

    @Test("hps generate writes the configuration and the table folders")
    func generateWritesFiles() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        #expect(FileManager.default.fileExists(atPath: output + "/hps.json"))
        for t in 0..<2 {
            #expect(try fileSize(output + "/embeddings/table\(t)/key") == 100 * 8)
            #expect(try fileSize(output + "/embeddings/table\(t)/emb_vector") == 100 * 4 * 4)
        }
        let configuration = try HPSConfiguration.load(path: output + "/hps.json")
        #expect(configuration.models.map(\.name) == ["2_table"])
        #expect(configuration.models.first?.tableNames == ["table0", "table1"])
    }

    @Test("hps lookup --json prints the files' rows, and the default for a missing key")
    func lookupJSON() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        let outcome = try hps(["lookup", "--config", output + "/hps.json", "--model", "2_table", "--table", "table1",
                               "--keys", "100,101,5000", "--json"], in: directory.path)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")

        let object = try #require(try JSONValue.parse(outcome.stdout).objectValue)
        let vectors = try #require(object["vectors"]?.arrayValue)
        #expect(vectors.count == 3)
        let rows = try vectors.map { try #require($0.arrayValue).map { Float(number($0) ?? .nan) } }
        #expect(rows.map(\.count) == [4, 4, 4])

        let folder = try SparseModelFolder(path: output + "/embeddings/table1", table: "table1", vecSize: 4)
        let (keys, fileVectors) = try folder.readAll()
        for (i, key) in [Int64(100), 101].enumerated() {
            let row = try #require(keys.firstIndex(of: key))
            #expect(rows[i] == Array(fileVectors[(row * 4)..<(row * 4 + 4)]), "key \(key)")
        }
        #expect(rows[2] == [0, 0, 0, 0])
    }

    @Test("hps lookup --stats --json counts the keys per tier and default, in all and for the table")
    func lookupStats() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        let outcome = try hps(["lookup", "--config", output + "/hps.json", "--model", "2_table", "--table", "table1",
                               "--keys", "100,101,5000", "--json", "--stats"], in: directory.path)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let stats = try #require(try JSONValue.parse(outcome.stdout)["stats"])
        #expect(stats["keys"] == 3 && stats["hash_map_hits"] == 2 && stats["defaults"] == 1)
        let table = try #require(stats["tables"]?["table1"])
        #expect(table["keys"] == 3 && table["hash_map_hits"] == 2 && table["defaults"] == 1)
        #expect(stats["tables"]?["table0"] == nil)
    }

    @Test("hps inspect describes both tables and their key ranges")
    func inspect() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        let outcome = try hps(["inspect", output + "/hps.json"], in: directory.path)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        #expect(outcome.stdout.contains("table table0"))
        #expect(outcome.stdout.contains("table table1"))
        #expect(outcome.stdout.contains("keys 0…99"))
        #expect(outcome.stdout.contains("keys 100…199"))
    }

    @Test("hps demo --json prints one object with both timings and matching predictions")
    func demoJSON() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try hps(["demo", "--iterations", "2", "--tables", "2", "--vocab", "100", "--dim", "4",
                               "--batch-size", "8", "--keys-per-sample", "3", "--json"], in: directory.path)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let lines = outcome.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let object = try #require(try JSONValue.parse(outcome.stdout).objectValue)
        #expect(object["device"]?.stringValue == "cpu")
        for variant in ["unfused", "fused"] {
            let timing = try #require(object[variant]?.objectValue, "\(variant)")
            for field in ["elapsed_seconds", "p50_us", "p99_us", "lookup_p50_us"] {
                let value = try #require(number(timing[field]), "\(variant).\(field)")
                #expect(value > 0, "\(variant).\(field)")
            }
        }
        #expect(number(object["speedup"]).map { $0 > 0 } == true)
        #expect(object["predictions_match"] == .bool(true))
    }

    @Test("hps lookup with a missing configuration fails with one line on stderr")
    func lookupMissingConfig() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let missing = directory.path + "/nope.json"
        let outcome = try hps(["lookup", "--config", missing, "--model", "m", "--table", "t", "--keys", "1"], in: directory.path)
        #expect(outcome.status != 0)
        #expect(outcome.stderrLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains(missing))
        #expect(outcome.stdout.isEmpty)
    }

    @Test("hps lookup of an unknown table fails with one line on stderr")
    func lookupUnknownTable() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        let outcome = try hps(["lookup", "--config", output + "/hps.json", "--model", "2_table", "--table", "table9",
                               "--keys", "1"], in: directory.path)
        #expect(outcome.status != 0)
        #expect(outcome.stderrLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("table9"))
        #expect(outcome.stdout.isEmpty)
    }

    @Test("hps lookup with a key that is not a number fails with one line on stderr")
    func lookupBadKey() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = try generate(in: directory.path)
        let outcome = try hps(["lookup", "--config", output + "/hps.json", "--model", "2_table", "--table", "table1",
                               "--keys", "1,x"], in: directory.path)
        #expect(outcome.status != 0)
        #expect(outcome.stderrLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.contains("\"x\""))
        #expect(outcome.stdout.isEmpty)
    }

    @Test("hps lookup --keys reads negative keys as keys (HugeCTR's int64 tables hold them), not as flags")
    func lookupNegativeKeys() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let output = joinPath(directory.path, "model")
        let generated = try hps(["generate", "--output", output, "--key-type", "int64", "--tables", "1", "--vocab", "10",
                                 "--dim", "2"], in: directory.path)
        try #require(generated.status == 0, "stderr: \(generated.stderr)")
        // The generated table, written again with a negative key among its keys.
        let keys: [Int64] = [-1, 5, -7]
        let vectors: [Float] = [1.5, -2, 3, 4, -0.25, 8]
        try keys.withUnsafeBufferPointer { keys in
            try vectors.withUnsafeBufferPointer { vectors in
                _ = try SparseModelFolder.write(path: joinPath(output, "embeddings/table0"), table: "table0",
                                                keys: keys, vectors: vectors, vecSize: 2)
            }
        }
        let outcome = try hps(["lookup", "--config", output + "/hps.json", "--model", "1_table", "--table", "0",
                               "--keys", "-7,5,-1", "--json"], in: directory.path)
        #expect(outcome.status == 0, "stderr: \(outcome.stderr)")
        let object = try JSONValue.parse(outcome.stdout)
        #expect(object["keys"] == .array([.integer(-7), .integer(5), .integer(-1)]))
        let rows = object["vectors"]?.arrayValue?.map { $0.arrayValue?.compactMap(number) ?? [] }
        #expect(rows == [[-0.25, 8], [3, 4], [1.5, -2]])
    }

    @Test("an error that begins with a JSON path prints the path as the configuration spells it")
    func errorKeepsPathCase() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let config = joinPath(directory.path, "hps.json")
        try #require(FileManager.default.createFile(atPath: config, contents: Data(#"{"supportlonglong": true}"#.utf8)))
        let outcome = try hps(["lookup", "--config", config, "--model", "m", "--table", "0", "--keys", "1"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderrLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("hps: models "), "stderr: \(outcome.stderr)")
    }

    @Test("hps demo --device gpu without a GPU fails with one line saying there is no GPU and why")
    func demoGPU() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try hps(["demo", "--device", "gpu", "--iterations", "1", "--tables", "1", "--vocab", "10",
                               "--dim", "2", "--batch-size", "2", "--keys-per-sample", "1"], in: directory.path)
        #expect(outcome.status != 0)
        #expect(outcome.stderrLines.count == 1, "stderr: \(outcome.stderr)")
        #expect(outcome.stderr.hasPrefix("hps: no GPU: the CUDA driver (libcuda.so.1) could not be loaded"))
    }

    @Test("hps demo --device auto without a GPU runs on the CPU and says why")
    func demoAuto() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try hps(["demo", "--device", "auto", "--iterations", "1", "--tables", "1", "--vocab", "10",
                               "--dim", "2", "--batch-size", "2", "--keys-per-sample", "1", "--json"], in: directory.path)
        #expect(outcome.status == 0)
        #expect(outcome.stderr.hasPrefix("hps: running on the CPU because no GPU: the CUDA driver (libcuda.so.1) could not be loaded"))
        #expect(outcome.stdout.contains("\"device\":\"cpu\""))
    }
}
