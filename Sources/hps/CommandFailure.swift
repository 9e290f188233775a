import ArgumentParser
import Glibc

/// Runs a command's body; an error becomes one sentence on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    Backends.registerAll()
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        var text = String(describing: error)
        if let first = text.first, first.isLowercase { text = first.uppercased() + text.dropFirst() }
        if !text.hasSuffix(".") { text += "." }
        note("hps: \(text)")
        throw ExitCode(1)
    }
}

/// `reportingErrors` for an async body.
func reportingErrorsAsync(_ body: () async throws -> Void) async throws {
    Backends.registerAll()
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        var text = String(describing: error)
        if let first = text.first, first.isLowercase { text = first.uppercased() + text.dropFirst() }
        if !text.hasSuffix(".") { text += "." }
        note("hps: \(text)")
        throw ExitCode(1)
    }
}

/// Writes a line to stderr.
func note(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
