#if Serving
package import GRPCCore

/// Triton's `RepositoryModelLoad` and `RepositoryModelUnload` RPCs of
/// `inference.GRPCInferenceService`, over the server's `ModelRepository`, as
/// tritonclient.grpc's `load_model` and `unload_model` call them.
///
/// Their messages are read from the protobuf wire format here
/// (`RepositoryControlRequest`) rather than from generated code: the
/// committed generated code has the service's other messages, and these two
/// requests need three fields. Both answer an empty message; a refusal ends
/// the RPC with the `InferenceError`'s code and sentence.
package struct RepositoryControlRPCs: RegistrableRPCService {
    /// The models loaded and unloaded.
    package let repository: ModelRepository

    /// The RPCs over `repository`.
    package init(repository: ModelRepository) {
        self.repository = repository
    }

    /// Registers the two handlers.
    package func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let repository = self.repository
        for (method, load) in [("RepositoryModelLoad", true), ("RepositoryModelUnload", false)] {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "inference.GRPCInferenceService", method: method),
                deserializer: RepositoryControlRequest.Wire(), serializer: EmptyMessage()
            ) { (request: StreamingServerRequest<RepositoryControlRequest>, _) -> StreamingServerResponse<Void> in
                var message: RepositoryControlRequest?
                do {
                    for try await part in request.messages where message == nil { message = part }
                } catch {
                    return StreamingServerResponse(error: RPCError(code: .invalidArgument, message: "\(error)"))
                }
                guard let message else {
                    return StreamingServerResponse(error: RPCError(code: .invalidArgument, message: "\(method) got no request message"))
                }
                do throws(InferenceError) {
                    if load {
                        try await repository.load(message.modelName, configuration: message.stringParameters["config"])
                    } else {
                        try await repository.unload(message.modelName)
                    }
                } catch {
                    return StreamingServerResponse(error: RPCError(code: error.rpcErrorCode, message: error.rpcErrorMessage))
                }
                return StreamingServerResponse(single: ServerResponse(message: ()))
            }
        }
    }
}

/// A `RepositoryModelLoadRequest` or `RepositoryModelUnloadRequest`
/// (`repository_name` = 1, `model_name` = 2, `parameters` = 3, a map of
/// string to `ModelRepositoryParameter`, whose `string_param` is field 3).
struct RepositoryControlRequest: Sendable, Equatable {
    var repositoryName = ""
    var modelName = ""
    /// The parameters given as strings (`config` among them).
    var stringParameters: [String: String] = [:]

    /// Reads the message's bytes; fields it does not know are skipped.
    init(bytes: [UInt8]) throws(ProtobufWireError) {
        var reader = ProtobufWireReader(bytes[...])
        while let (field, value) = try reader.next() {
            switch (field, value) {
            case (1, .bytes(let text)): repositoryName = String(decoding: text, as: UTF8.self)
            case (2, .bytes(let text)): modelName = String(decoding: text, as: UTF8.self)
            case (3, .bytes(let entry)):
                var key = "", string: String?
                var entryReader = ProtobufWireReader(entry)
                while let (entryField, entryValue) = try entryReader.next() {
                    switch (entryField, entryValue) {
                    case (1, .bytes(let text)): key = String(decoding: text, as: UTF8.self)
                    case (2, .bytes(let parameter)):
                        var parameterReader = ProtobufWireReader(parameter)
                        while let (choice, choiceValue) = try parameterReader.next() {
                            if choice == 3, case .bytes(let text) = choiceValue { string = String(decoding: text, as: UTF8.self) }
                        }
                    default: break
                    }
                }
                if let string { stringParameters[key] = string }
            default: break
            }
        }
    }

    init(modelName: String, stringParameters: [String: String] = [:]) {
        self.modelName = modelName
        self.stringParameters = stringParameters
    }

    /// The deserializer of the RPCs.
    struct Wire: MessageDeserializer {
        func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> RepositoryControlRequest {
            try RepositoryControlRequest(bytes: bytes.withUnsafeBytes { Array($0) })
        }
    }
}

/// The empty response message of both RPCs.
private struct EmptyMessage: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Void) throws -> Bytes { Bytes([]) }
}

/// A protobuf message that is not well formed.
struct ProtobufWireError: Error, CustomStringConvertible {
    var description: String
}

/// Reads the fields of a protobuf message, one (field number, value) at a time.
struct ProtobufWireReader {
    enum Value {
        case varint(UInt64)
        case fixed(UInt64)
        case bytes(ArraySlice<UInt8>)
    }

    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    /// The next field, nil at the end.
    mutating func next() throws(ProtobufWireError) -> (Int, Value)? {
        guard !bytes.isEmpty else { return nil }
        let tag = try varint()
        let field = Int(tag >> 3)
        switch tag & 7 {
        case 0: return (field, .varint(try varint()))
        case 1: return (field, .fixed(try fixed(8)))
        case 5: return (field, .fixed(try fixed(4)))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count) else {
                throw ProtobufWireError(description: "field \(field) claims \(length) bytes, \(bytes.count) remain")
            }
            let value = bytes.prefix(Int(length))
            bytes = bytes.dropFirst(Int(length))
            return (field, .bytes(value))
        default:
            throw ProtobufWireError(description: "field \(field) has wire type \(tag & 7), which proto3 messages do not use")
        }
    }

    private mutating func varint() throws(ProtobufWireError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = bytes.first {
            bytes = bytes.dropFirst()
            guard shift < 64 else { break }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        throw ProtobufWireError(description: "a varint runs past the end of the message")
    }

    private mutating func fixed(_ count: Int) throws(ProtobufWireError) -> UInt64 {
        guard bytes.count >= count else { throw ProtobufWireError(description: "a fixed-width field runs past the end of the message") }
        var value: UInt64 = 0
        for (i, byte) in bytes.prefix(count).enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        bytes = bytes.dropFirst(count)
        return value
    }
}
#endif
