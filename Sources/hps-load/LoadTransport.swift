/// One inference request of the load: the keys of every table, and the input
/// tensors that carry them to the model asked.
struct LoadRequest: Sendable {
    /// All tables' keys, table after table.
    var keys: [Int64]
    /// Keys per table.
    var numKeys: [Int32]
    /// The input tensors sent, in order: KEYS and NUMKEYS for an HPS model,
    /// KEYS0…KEYS<tables-1> for a prediction model (`RequestKind.request`).
    var inputs: [LoadInput]
}

/// One input tensor of a request, sent as its raw little-endian bytes:
/// binary tensor data over HTTP, `raw_input_contents` over gRPC.
struct LoadInput: Sendable {
    /// The elements of an input.
    enum Values: Sendable {
        case int64(ArraySlice<Int64>)
        case int32([Int32])
    }

    /// The input's name, e.g. `KEYS` or `KEYS3`.
    var name: String
    /// The tensor's shape, e.g. [keys] or [samples, keys per sample].
    var shape: [Int]
    var values: Values

    /// The KServe v2 datatype.
    var datatype: String {
        switch values {
        case .int64: "INT64"
        case .int32: "INT32"
        }
    }

    /// The size of the raw contents.
    var byteCount: Int {
        switch values {
        case let .int64(keys): keys.count * 8
        case let .int32(counts): counts.count * 4
        }
    }

    /// Calls `body` with the raw contents (the host's byte order, which is
    /// little-endian on every platform this runs on).
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        switch values {
        case let .int64(keys): try keys.withUnsafeBytes(body)
        case let .int32(counts): try counts.withUnsafeBytes(body)
        }
    }
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
/// extension, `GRPCTransport` for ModelInfer over HTTP/2).
protocol LoadTransport: Sendable {
    /// Opens one connection, kept alive for many requests.
    func connect() async throws -> any LoadConnection
    /// Closes what the transport holds (its event loops).
    func shutdown() async throws
}

/// One connection: one request in flight at a time.
protocol LoadConnection: Sendable {
    /// Encodes one request for this connection, before the clock starts: what
    /// a client holds ready to send (Triton's perf_analyzer also prepares its
    /// inputs ahead), so the latency measured is the exchange alone.
    func prepare(_ request: LoadRequest) -> any PreparedRequest
    /// Closes the connection.
    func close() async
}

/// A request encoded for its connection, ready to go on the wire.
protocol PreparedRequest: Sendable {
    /// Sends the request and awaits its answer.
    func send() async throws -> LoadResponse
}
