/// One inference request of the load: an HPS model's KEYS (all tables' keys
/// concatenated) and NUMKEYS (keys per table).
struct LoadRequest: Sendable {
    /// All tables' keys, table after table.
    var keys: [Int64]
    /// Keys per table.
    var numKeys: [Int32]
}

/// The server's answer to one request.
struct LoadResponse: Sendable {
    /// The protocol's status: 200 for HTTP success.
    var status: Int
    /// OUTPUT0's raw little-endian FP32 bytes (empty on failure).
    var output: [UInt8]
    /// The error message of a refused request.
    var error: String?

    /// Float `index` of the output.
    func float(at index: Int) -> Float {
        output.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))) }
    }
}

/// How the load generator reaches the server: one file per protocol
/// (`HTTPTransport` for KServe v2 over HTTP/1.1 with the binary tensor
/// extension; a gRPC one can be added beside it).
protocol LoadTransport: Sendable {
    /// Opens one connection, kept alive for many requests.
    func connect() async throws -> any LoadConnection
    /// Closes what the transport holds (its event loops).
    func shutdown() async throws
}

/// One connection: one request in flight at a time.
protocol LoadConnection: Sendable {
    /// Sends one request and awaits its answer.
    func infer(_ request: LoadRequest) async throws -> LoadResponse
    /// Closes the connection.
    func close() async
}
