#if Serving
import FoundationEssentials

extension InferenceRequest {
    /// A KServe v2 gRPC `ModelInferRequest` as the transport-neutral request.
    ///
    /// Each input's elements come from `raw_input_contents` (little-endian, one
    /// entry per input, in input order, as tritonclient.grpc sends them) or, when
    /// the request has no raw contents, from the input's typed `contents`
    /// (`int64_contents` for INT64, `int_contents` for INT32). The checks and
    /// their messages are those of the HTTP parser.
    /// - Throws: `InferenceError.malformed` or `.invalidInput`, naming what is wrong.
    init(grpc request: Inference_ModelInferRequest) throws(InferenceError) {
        let raw = request.rawInputContents
        guard raw.isEmpty || raw.count == request.inputs.count else {
            throw .malformed("the request has \(request.inputs.count) inputs but \(raw.count) raw_input_contents; send raw contents for every input or for none")
        }
        var inputs: [Input] = []
        inputs.reserveCapacity(request.inputs.count)
        for (index, tensor) in request.inputs.enumerated() {
            inputs.append(try Self.input(tensor, raw: raw.isEmpty ? nil : raw[index]))
        }
        self.init(id: request.id.isEmpty ? nil : request.id,
                  inputs: inputs,
                  outputs: request.outputs.map { Output(name: $0.name, binaryData: true) },
                  binaryDataOutput: true)
    }

    private static func input(_ tensor: Inference_ModelInferRequest.InferInputTensor, raw: Data?) throws(InferenceError) -> Input {
        let name = tensor.name
        guard let datatype = TensorDatatype(rawValue: tensor.datatype), datatype != .fp32 else {
            throw .invalidInput("input \(name) has datatype \(tensor.datatype); this server takes INT64 or INT32 inputs")
        }
        let (shape, count) = try checkedShape(tensor.shape, input: name, shown: { "\(tensor.shape)" })
        let values: [Int64]
        if let raw {
            guard raw.count % datatype.byteSize == 0 && raw.count / datatype.byteSize == count else {
                throw .invalidInput("input \(name) has shape \(shape) of \(datatype.rawValue): \(count * datatype.byteSize) bytes, but its raw_input_contents has \(raw.count)")
            }
            values = raw.withUnsafeBytes { decode($0, count: count, datatype: datatype) }
        } else {
            switch datatype {
            case .int64: values = tensor.contents.int64Contents
            case .int32: values = tensor.contents.intContents.map(Int64.init)
            case .fp32: values = []
            }
        }
        guard values.count == count else {
            throw .invalidInput("input \(name) has shape \(shape), i.e. \(count) elements, but \(values.count) values")
        }
        return Input(name: name, datatype: datatype, shape: shape, values: values)
    }
}
#endif
