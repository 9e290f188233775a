package import NIOCore

/// One value of the Redis serialization protocol, version 2 (RESP2).
///
/// Bulk strings are kept as `ByteBuffer` slices of the bytes read, so a
/// reply of many vectors is not copied value by value before it is used.
package enum RESPValue: Sendable, Equatable {
    /// `+OK`.
    case simpleString(String)
    /// `-ERR …`: the server's error message, without the leading `-`.
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$n` followed by n bytes, or nil for the null bulk string `$-1`.
    case bulkString(ByteBuffer?)
    /// `*n` followed by n values, or nil for the null array `*-1`.
    case array([RESPValue]?)

    /// The bytes of a bulk or simple string as UTF-8 text.
    package var string: String? {
        switch self {
        case let .simpleString(s): return s
        case let .bulkString(b?): return String(buffer: b)
        default: return nil
        }
    }

    /// The value of an integer reply.
    package var integer: Int64? {
        if case let .integer(i) = self { return i }
        return nil
    }

    /// The elements of a non-null array reply.
    package var array: [RESPValue]? {
        if case let .array(a?) = self { return a }
        return nil
    }
}
