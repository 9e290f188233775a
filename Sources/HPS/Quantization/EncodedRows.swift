/// Rows of float32 encoded as a `VectorCodec` stores them, in memory this
/// value owns: what a tier writes for a quantized table (RocksDB's values,
/// Redis's fields, a GPU table's update). Every row is encoded before any is
/// written, so a row the format cannot hold fails the whole write.
///
/// Thread safety: immutable after `init`; read it from any thread.
package final class EncodedRows: @unchecked Sendable {
    /// Row i's bytes start at `base + i × codec.rowBytes`.
    package let base: UnsafeMutableRawPointer
    /// Rows held.
    package let count: Int
    /// The format.
    package let codec: VectorCodec

    /// Encodes `count` rows of `codec.dim` floats: row i is source row
    /// `sourceRow(i)` of `vectors`.
    /// - Parameters:
    ///   - key: the key of row i, to name in an error.
    ///   - table: the table, to name in an error.
    ///   - decoded: whether the rows are ones this codec decoded (read back
    ///     from a tier): then each is encoded to decode to the same floats
    ///     again (`VectorCodec.encodeDecoded`).
    /// - Throws: `StoreError.unrepresentable` for the first row the format cannot hold.
    package init(_ vectors: UnsafePointer<Float>, count: Int, codec: VectorCodec, table: String,
                 sourceRow: (Int) -> Int = { $0 }, decoded: Bool = false, key: (Int) -> Int64) throws(StoreError) {
        self.count = count
        self.codec = codec
        base = .allocate(byteCount: max(1, count * codec.rowBytes), alignment: 16)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, decoded ? codec.dim : 1))
        defer { scratch.deallocate() }
        for i in 0..<count {
            let row = vectors + sourceRow(i) * codec.dim
            let stored = base + i * codec.rowBytes
            let failed = decoded ? codec.encodeDecoded(row, into: stored, scratch: scratch) : codec.encode(row, into: stored)
            if let element = failed {
                // Every property is set: deinit releases `base`.
                throw .unrepresentable(table: table, key: key(i), element: element, value: row[element], storage: codec.storage)
            }
        }
    }

    deinit { base.deallocate() }

    /// Row i's bytes.
    package func row(_ i: Int) -> UnsafeRawPointer { UnsafeRawPointer(base + i * codec.rowBytes) }

    /// Bytes of all rows.
    package var byteCount: Int { count * codec.rowBytes }

    /// Every row as it reads back: (count × dim) floats.
    package func decoded() -> [Float] {
        [Float](unsafeUninitializedCapacity: count * codec.dim) { floats, initialized in
            for i in 0..<count { codec.decode(row(i), into: floats.baseAddress! + i * codec.dim) }
            initialized = count * codec.dim
        }
    }
}
