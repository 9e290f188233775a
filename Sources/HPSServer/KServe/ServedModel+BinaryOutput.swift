package import HPS
package import NIOCore

extension ServedModel {
    /// Looks up a checked batch on one replica straight into a response
    /// buffer: appends the output's `outputCount(batch)` floats, little-endian
    /// (Triton's binary tensor data), after `buffer`'s written bytes. Blocking
    /// work, as `lookup(_:replica:)`; run it off the event loop.
    ///
    /// Where the floats' place in `buffer` is 4-byte aligned (little-endian
    /// machines), the lookup writes them there, without an array of its own
    /// and a copy of the output; elsewhere they go through `lookup(_:)`.
    /// - Returns: what the lookup found where.
    /// - Throws: as `lookup(_:replica:)`; `buffer` is then as it was.
    package func lookup(_ batch: Batch, appendingTo buffer: inout ByteBuffer, replica: Int = 0) throws(InferenceError) -> LookupCounts {
        let count = outputCount(batch)
        #if _endian(little)
        if count > 0 {
            var result: Result<LookupCounts, InferenceError>? = nil
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count * 4) { bytes in
                guard let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return 0 }
                let floats = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<(count * 4)])
                result = floats.withMemoryRebound(to: Float.self) { output in
                    Result { () throws(InferenceError) -> LookupCounts in try lookup(batch, into: output, replica: replica) }
                }
                guard case .success = result else { return 0 }
                return count * 4
            }
            if let result { return try result.get() }
        }
        #endif
        let (vectors, counts) = try lookup(batch, replica: replica)
        buffer.writeLittleEndianFloats(vectors)
        return counts
    }
}

extension ByteBuffer {
    /// Appends `floats` as little-endian FP32, as Triton's binary tensor data holds them.
    mutating func writeLittleEndianFloats(_ floats: [Float]) {
        #if _endian(little)
        floats.withUnsafeBytes { _ = writeBytes($0) }
        #else
        for value in floats { writeInteger(value.bitPattern, endianness: .little) }
        #endif
    }
}
