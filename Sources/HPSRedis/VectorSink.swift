package import HPS

/// Where the values of one `HMGET` reply go: the connection's event loop
/// copies each value of exactly `valueBytes` bytes straight from the bytes
/// received into its row (a quantized row is decoded into it), instead of
/// handing back one `RESPValue` per field
/// for the caller to copy (which cost a retain, a release and a slice per
/// field, all on the caller's one thread).
///
/// A command that carries a sink is answered with `.integer(hits)` when its
/// reply is an array of one element per row; any other reply (an error such
/// as `MOVED`, or an array of another length) is handed back as it is and no
/// row is written.
///
/// Ownership: the rows are the caller's output buffers; they must stay valid
/// until the call that sent the command has returned (the store blocks on its
/// replies, and a connection that times out or closes writes nothing after
/// failing the call).
///
/// Thread safety: written on one event loop while the command is in flight,
/// read by the caller after its reply arrived (the future's completion orders
/// the two). A command resent after a redirection reuses its sink.
package final class VectorSink: @unchecked Sendable {
    /// The destination of each field's value, in the order of the command's fields.
    package let rows: [UnsafeMutableRawPointer]
    /// The size of a value that is copied; a value of another size counts as a miss.
    package let valueBytes: Int
    /// Whether each field's value was copied to its row (all false until a reply is read).
    package private(set) var found: [Bool]
    /// Decodes a quantized row; nil for float32 values, which are copied.
    let codec: VectorCodec?
    /// An aligned copy of a quantized value (the bytes received have no alignment).
    private let aligned: UnsafeMutableRawPointer?

    /// A sink for the values of `rows.count` fields of `valueBytes` bytes each.
    package init(rows: [UnsafeMutableRawPointer], valueBytes: Int) {
        self.rows = rows
        self.valueBytes = valueBytes
        found = Array(repeating: false, count: rows.count)
        codec = nil
        aligned = nil
    }

    /// A sink for rows stored as `codec` says, decoded into float32 rows.
    package init(rows: [UnsafeMutableRawPointer], codec: VectorCodec) {
        self.rows = rows
        valueBytes = codec.rowBytes
        found = Array(repeating: false, count: rows.count)
        self.codec = codec.storage == .fp32 ? nil : codec
        aligned = codec.storage == .fp32 ? nil : .allocate(byteCount: codec.rowBytes, alignment: 16)
    }

    deinit { aligned?.deallocate() }

    /// Records a field's value: copies it into its row when it has the expected size.
    /// - Returns: whether it was copied.
    @inline(__always)
    func take(_ index: Int, _ value: UnsafeRawBufferPointer) -> Bool {
        guard value.count == valueBytes, let base = value.baseAddress else {
            found[index] = false
            return false
        }
        if let codec, let aligned {
            aligned.copyMemory(from: base, byteCount: valueBytes)
            codec.decode(aligned, into: rows[index].assumingMemoryBound(to: Float.self))
        } else {
            rows[index].copyMemory(from: base, byteCount: valueBytes)
        }
        found[index] = true
        return true
    }

    /// Marks every row as not found (a reply that was not one value per row).
    func clear() {
        for i in found.indices { found[i] = false }
    }

    /// Records a field without a value (a null bulk string, or not a string).
    @inline(__always)
    func miss(_ index: Int) {
        found[index] = false
    }
}
