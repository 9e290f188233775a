#if Kafka
import Foundation
import HPS
import HPSStoreTestSupport
import Testing

@testable import HPSKafka

/// `hps publish`, run as a real process against the mock cluster of this process.
@Suite(.serialized)
struct PublishCommandTests {
    /// Runs the `hps` beside this test process; returns (status, stdout, stderr).
    func hps(_ arguments: [String], in directory: String) throws -> (Int32, String, String) {
        let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("hps").path
        try #require(FileManager.default.isExecutableFile(atPath: path), "hps was not built beside the tests at \(path)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = directory + "/out-\(UUID().uuidString)", err = directory + "/err-\(UUID().uuidString)"
        try #require(FileManager.default.createFile(atPath: out, contents: nil))
        try #require(FileManager.default.createFile(atPath: err, contents: nil))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOfFile: out, encoding: .utf8), try String(contentsOfFile: err, encoding: .utf8))
    }

    @Test("hps publish posts a sparse model folder's rows, and a consumer applies exactly them")
    func publishFolder() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try cluster.createTopic("hps_et.m.t0", partitions: 4)
        let fixture = try UpdateFixture()
        let rows = RandomRows(count: 500, vecSize: 4, seed: 99)
        let folder = fixture.directory.path + "/new-t0"
        _ = try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: folder, table: "t0", keys: k, vectors: v, vecSize: 4)
            }
        }
        let (status, stdout, stderr) = try hps(["publish", "--brokers", cluster.bootstrapServers, "--model", "m",
                                                "--table", "t0", "--from", folder, "--max-message-bytes", "4096"],
                                               in: fixture.directory.path)
        #expect(status == 0, "stderr: \(stderr)")
        #expect(stdout.hasPrefix("published 500 rows of vec size 4 to hps_et.m.t0 in "))
        // The same files as --keys and --vectors.
        let (again, _, againErr) = try hps(["publish", "--brokers", cluster.bootstrapServers, "--model", "m", "--table", "t0",
                                            "--keys", folder + "/key", "--vectors", folder + "/emb_vector"],
                                           in: fixture.directory.path)
        #expect(again == 0, "stderr: \(againErr)")

        let consumer = try UpdateConsumer(brokers: cluster.bootstrapServers, group: "check", patterns: ["^hps_et\\.m\\..+$"],
                                          source: UpdateSourceConfiguration())
        defer { consumer.close() }
        let applier = UpdateApplier(server: fixture.server)
        var keys = 0
        let deadline = ContinuousClock.now + .seconds(90)
        while keys < 1000 && ContinuousClock.now < deadline {
            keys += try applier.apply(consumer.poll(maxMessages: 100, timeoutMs: 200).messages)
        }
        #expect(keys == 1000)
        #expect(try fixture.lookup(table: 0, rows.keys) == rows.vectors)
    }

    @Test("hps publish names what to fix in its arguments and files")
    func refusals() throws {
        let fixture = try UpdateFixture()
        let directory = fixture.directory.path
        let (status, _, stderr) = try hps(["publish", "--brokers", "127.0.0.1:1", "--model", "m", "--table", "t0"], in: directory)
        #expect(status != 0)
        #expect(stderr.contains("give the rows as --from DIR, or as --keys FILE and --vectors FILE"))
        let (badName, _, badNameErr) = try hps(["publish", "--brokers", "127.0.0.1:1", "--model", "m.x", "--table", "t0",
                                                "--from", directory + "/t0"], in: directory)
        #expect(badName != 0)
        #expect(badNameErr.contains("--model must be 1 to 120 of a-z, A-Z, 0-9, _ and -, not \"m.x\""))
        let (missing, _, missingErr) = try hps(["publish", "--brokers", "127.0.0.1:1", "--model", "m", "--table", "t0",
                                                "--from", directory + "/none"], in: directory)
        #expect(missing == 1)
        #expect(missingErr.contains(directory + "/none/key"))
    }
}
#endif
