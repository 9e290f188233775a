import ArgumentParser
import Glibc

/// Runs a command's body; an error becomes one sentence on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch {
        throw failure(error)
    }
}

/// `reportingErrors` for an async body.
func reportingErrorsAsync(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        throw failure(error)
    }
}

/// `error` written as one sentence on stderr after `hps: `, as the error
/// words it: its first word is left as it is, since it is often a name the
/// user wrote (a JSON path such as `models[0].sparse_files`, a table, a
/// flag), which must read as written. The exit status to end with: 1, or the
/// status an `ExitCode` carries.
private func failure(_ error: any Error) -> ExitCode {
    if let exit = error as? ExitCode { return exit }
    var text = String(describing: error)
    if !text.hasSuffix(".") { text += "." }
    note("hps: \(text)")
    return ExitCode(1)
}

/// Writes a line to stderr.
func note(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
