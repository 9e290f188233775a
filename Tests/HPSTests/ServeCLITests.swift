import Testing

@testable import HPS

/// `hps serve` refuses bad flags with one sentence before it listens.
/// (The server itself is tested in HPSServerTests and Tests/python.)
struct ServeCLITests {
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

    @Test("hps serve with a port out of range exits 1 naming the flag")
    func portOutOfRange() throws {
        let directory = try TemporaryDirectory(prefix: "hps-cli")
        defer { directory.remove() }
        let outcome = try CLITests().hps(["serve", "--config", "hps.json", "--http-port", "70000"], in: directory.path)
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("--http-port must be between 0 and 65535"))
    }
}
