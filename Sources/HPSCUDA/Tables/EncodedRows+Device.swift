import HPS

extension EncodedRows {
    /// `init` for the GPU tables, whose errors are `CUDAError`s: a row the
    /// format cannot hold is `CUDAError.storage(.unrepresentable(…))`.
    static func forDevice(_ vectors: UnsafePointer<Float>, count: Int, codec: VectorCodec, table: String,
                          sourceRow: (Int) -> Int = { $0 }, decoded: Bool = false, key: (Int) -> Int64) throws(CUDAError) -> EncodedRows {
        do {
            return try EncodedRows(vectors, count: count, codec: codec, table: table, sourceRow: sourceRow, decoded: decoded, key: key)
        } catch {
            throw .storage(error)
        }
    }
}
