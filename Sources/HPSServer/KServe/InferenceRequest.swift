import HPS

/// A parsed KServe v2 inference request: the JSON header and, with Triton's
/// binary tensor data extension, the raw tensors that follow it.
package struct InferenceRequest: Sendable, Equatable {
    /// One input tensor, its elements widened to `Int64`.
    package struct Input: Sendable, Equatable {
        /// The input's name, e.g. `KEYS`.
        package var name: String
        /// The datatype the client declared.
        package var datatype: TensorDatatype
        /// The declared shape; its product equals `values.count`.
        package var shape: [Int]
        /// The elements in row-major order.
        package var values: [Int64]
    }

    /// One requested output.
    package struct Output: Sendable, Equatable {
        /// The output's name.
        package var name: String
        /// Whether the client wants it as binary tensor data.
        package var binaryData: Bool
    }

    /// The request's `id`, echoed in the response.
    package var id: String?
    /// The inputs, in the order sent.
    package var inputs: [Input]
    /// The outputs asked for; empty means all of them.
    package var outputs: [Output]
    /// The request parameter `binary_data_output`: every output as binary data.
    package var binaryDataOutput: Bool

    /// Whether output `name` goes back as binary tensor data.
    package func wantsBinary(_ name: String) -> Bool {
        outputs.first { $0.name == name }?.binaryData ?? binaryDataOutput
    }

    /// Parses a request body.
    /// - Parameters:
    ///   - body: the whole HTTP body.
    ///   - headerLength: the `Inference-Header-Content-Length` header: the first
    ///     `headerLength` bytes are JSON, the rest the binary tensors of the inputs
    ///     that declare `parameters.binary_data_size`, in input order. `nil`: all JSON.
    /// - Throws: `InferenceError.malformed` or `.invalidInput`, naming what is wrong.
    package static func parse(body: [UInt8], headerLength: Int?) throws(InferenceError) -> InferenceRequest {
        // `withUnsafeBytes` rethrows untyped errors, so the typed error travels inside a `Result`.
        try body.withUnsafeBytes { body in
            Result { () throws(InferenceError) -> InferenceRequest in try parse(body: body, headerLength: headerLength) }
        }.get()
    }

    /// Parses a request body where it lies (the request's own buffer), as `parse(body:headerLength:)`.
    package static func parse(body: UnsafeRawBufferPointer, headerLength: Int?) throws(InferenceError) -> InferenceRequest {
        let jsonEnd = headerLength ?? body.count
        guard jsonEnd >= 0 && jsonEnd <= body.count else {
            throw .malformed("Inference-Header-Content-Length is \(headerLength ?? 0) but the body has only \(body.count) bytes")
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: body[0..<jsonEnd]), as: UTF8.self)
        let document: JSONValue
        do {
            document = try JSONValue.parse(text)
        } catch {
            throw .malformed("the request body is not valid JSON: \(error)")
        }
        guard let object = document.objectValue else {
            throw .malformed("the request body must be a JSON object with \"inputs\"")
        }
        var id: String? = nil
        if let value = object["id"] {
            guard let string = value.stringValue else { throw .malformed("\"id\" must be a string") }
            id = string
        }
        guard let inputValues = object["inputs"]?.arrayValue else {
            throw .malformed("the request must have \"inputs\", an array of tensors with name, datatype, shape and data")
        }
        var binaryOffset = jsonEnd
        var inputs: [Input] = []
        for (index, value) in inputValues.enumerated() {
            inputs.append(try parseInput(value, index: index, body: body, binaryOffset: &binaryOffset))
        }
        if binaryOffset != body.count {
            throw .malformed("the body has \(body.count - jsonEnd) bytes after the JSON header (Inference-Header-Content-Length \(jsonEnd)) but the inputs' binary_data_size add up to \(binaryOffset - jsonEnd)")
        }
        var outputs: [Output] = []
        if let outputValues = object["outputs"] {
            guard let array = outputValues.arrayValue else { throw .malformed("\"outputs\" must be an array") }
            for value in array {
                guard let name = value["name"]?.stringValue else {
                    throw .malformed("each of \"outputs\" must be an object with a \"name\"")
                }
                let binary = try bool(value["parameters"]?["binary_data"], name: "binary_data of output \(name)")
                outputs.append(Output(name: name, binaryData: binary))
            }
        }
        let binaryDataOutput = try bool(object["parameters"]?["binary_data_output"], name: "parameters.binary_data_output")
        return InferenceRequest(id: id, inputs: inputs, outputs: outputs, binaryDataOutput: binaryDataOutput)
    }

    private static func bool(_ value: JSONValue?, name: String) throws(InferenceError) -> Bool {
        switch value {
        case nil, .null?: return false
        case let .bool(flag)?: return flag
        default: throw .malformed("\(name) must be true or false")
        }
    }

    private static func parseInput(_ value: JSONValue, index: Int, body: UnsafeRawBufferPointer,
                                   binaryOffset: inout Int) throws(InferenceError) -> Input {
        guard let name = value["name"]?.stringValue else {
            throw .malformed("inputs[\(index)] must be an object with a string \"name\"")
        }
        guard let datatypeName = value["datatype"]?.stringValue else {
            throw .malformed("input \(name) has no \"datatype\"")
        }
        guard let datatype = TensorDatatype(rawValue: datatypeName), datatype != .fp32 else {
            throw .invalidInput("input \(name) has datatype \(datatypeName); this server takes INT64 or INT32 inputs")
        }
        guard let shapeValues = value["shape"]?.arrayValue else {
            throw .malformed("input \(name) has no \"shape\" (an array of dimensions)")
        }
        var dimensions: [Int64] = []
        for dimension in shapeValues {
            // A non-integer fails the range check below with the same message.
            if case let .integer(d) = dimension { dimensions.append(d) } else { dimensions.append(-1) }
        }
        let (shape, count) = try checkedShape(dimensions, input: name, shown: { JSONValue.array(shapeValues).serialized() })
        var values: [Int64] = []
        switch value["parameters"]?["binary_data_size"] {
        case nil, .null?:
            guard let data = value["data"] else {
                throw .malformed("input \(name) has neither \"data\" nor parameters.binary_data_size")
            }
            // The shape is the client's word: reserve no more than the body can hold
            // (each JSON number takes at least two bytes), so a shape of billions
            // of elements costs nothing before the count check below refuses it.
            values.reserveCapacity(min(count, body.count / 2 + 1))
            try flatten(data, name: name, datatype: datatype, into: &values)
        case let .integer(size)?:
            let size = Int(size)
            guard size >= 0 && size <= body.count - binaryOffset else {
                throw .malformed("input \(name) declares binary_data_size \(size) but only \(body.count - binaryOffset) bytes of binary data remain")
            }
            guard size % datatype.byteSize == 0 && size / datatype.byteSize == count else {
                throw .invalidInput("input \(name) has shape \(shape) of \(datatype.rawValue): \(count * datatype.byteSize) bytes, but binary_data_size is \(size)")
            }
            values = decode(UnsafeRawBufferPointer(rebasing: body[binaryOffset...]), count: count, datatype: datatype)
            binaryOffset += size
        default:
            throw .malformed("parameters.binary_data_size of input \(name) must be an integer")
        }
        guard values.count == count else {
            throw .invalidInput("input \(name) has shape \(shape), i.e. \(count) elements, but \(values.count) values")
        }
        return Input(name: name, datatype: datatype, shape: shape, values: values)
    }

    /// An input's shape as both transports check it: at least one dimension,
    /// each a non-negative 32-bit count, whose product (the element count) is
    /// at most `maximumElements`.
    /// - Parameter shown: the shape as the request wrote it, for the error
    ///   (made only for an error).
    /// - Returns: the shape and its element count.
    /// The most elements an input may declare (2³¹ − 1): far more keys than a
    /// request body can carry, and small enough that no byte count overflows.
    static let maximumElements = Int(Int32.max)

    static func checkedShape(_ dimensions: [Int64], input name: String,
                             shown: () -> String) throws(InferenceError) -> (shape: [Int], count: Int) {
        var shape: [Int] = []
        var count = 1
        for d in dimensions {
            guard d >= 0, d <= Int64(Int32.max) else {
                throw .invalidInput("input \(name) has shape \(shown()); dimensions must be non-negative integers")
            }
            shape.append(Int(d))
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= maximumElements else {
                throw .invalidInput("input \(name) has shape \(shown()), more than \(maximumElements) elements")
            }
            count = product
        }
        guard !shape.isEmpty else {
            throw .invalidInput("input \(name) has shape []; it must have at least one dimension")
        }
        return (shape, count)
    }

    /// Reads `count` little-endian integers of `datatype` from the start of `bytes`.
    static func decode(_ bytes: UnsafeRawBufferPointer, count: Int, datatype: TensorDatatype) -> [Int64] {
        [Int64](unsafeUninitializedCapacity: count) { values, initialized in
            initialized = 0
            guard count > 0 else { return }
            precondition(bytes.count >= count * datatype.byteSize, "\(count) values of \(datatype.rawValue) need \(count * datatype.byteSize) bytes, not \(bytes.count)")
            let out = values.baseAddress!
            switch datatype {
            case .int64:
                #if _endian(little)
                UnsafeMutableRawPointer(out).copyMemory(from: bytes.baseAddress!, byteCount: count * 8)
                #else
                for i in 0..<count { out[i] = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self)) }
                #endif
            case .int32, .fp32:
                for i in 0..<count {
                    out[i] = Int64(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: i &* 4, as: Int32.self)))
                }
            }
            initialized = count
        }
    }

    /// Flat or nested JSON arrays of integers, in row-major order.
    private static func flatten(_ value: JSONValue, name: String, datatype: TensorDatatype,
                                into values: inout [Int64]) throws(InferenceError) {
        switch value {
        case let .array(elements):
            for element in elements { try flatten(element, name: name, datatype: datatype, into: &values) }
        case let .integer(v):
            if datatype == .int32 && (v < Int64(Int32.min) || v > Int64(Int32.max)) {
                throw .invalidInput("input \(name) is INT32 but holds \(v), which does not fit in 32 bits")
            }
            values.append(v)
        default:
            throw .invalidInput("input \(name) is \(datatype.rawValue) but its data holds \(value.serialized()), which is not a 64-bit integer")
        }
    }
}
