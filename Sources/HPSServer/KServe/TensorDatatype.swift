/// The KServe v2 tensor datatypes the server reads or writes.
package enum TensorDatatype: String, Sendable, CaseIterable {
    /// 32-bit signed integers (4 bytes each in binary data).
    case int32 = "INT32"
    /// 64-bit signed integers (8 bytes each).
    case int64 = "INT64"
    /// 32-bit floats (4 bytes each).
    case fp32 = "FP32"

    /// Bytes per element in Triton's binary tensor data (little-endian).
    package var byteSize: Int {
        switch self {
        case .int32, .fp32: 4
        case .int64: 8
        }
    }
}
