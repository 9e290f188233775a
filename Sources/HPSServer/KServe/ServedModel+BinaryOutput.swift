package import HPS
package import NIOCore

extension ServedModel {
    /// Looks up checked batches as one lookup on one replica
    /// (`lookup(_:into:replica:)`) straight into a buffer: appends the
    /// batches' floats, little-endian (Triton's binary tensor data), batch
    /// after batch, after `buffer`'s written bytes. A merged lookup's buffer
    /// is sliced into each request's part (`ByteBuffer.getSlice`) without a
    /// copy. Blocking work, as `lookup(_:replica:)`; run it off the event loop.
    ///
    /// Where the floats' place in `buffer` is 4-byte aligned (little-endian
    /// machines), the lookup writes them there, without an array of its own
    /// and a copy of the output; elsewhere they go through one.
    /// - Returns: what the lookup found where.
    /// - Throws: as `lookup(_:replica:)`; `buffer` is then as it was.
    package func lookup(_ batches: [Batch], appendingTo buffer: inout ByteBuffer,
                        replica: Int = 0) throws(InferenceError) -> LookupCounts {
        let count = batches.reduce(0) { $0 + outputCount($1) }
        #if _endian(little)
        if count > 0 {
            var result: Result<LookupCounts, InferenceError>? = nil
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count * 4) { bytes in
                guard let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return 0 }
                let floats = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<(count * 4)])
                result = floats.withMemoryRebound(to: Float.self) { output in
                    Result { () throws(InferenceError) -> LookupCounts in try lookup(batches, into: output, replica: replica) }
                }
                guard case .success = result else { return 0 }
                return count * 4
            }
            if let result { return try result.get() }
        }
        #endif
        var vectors = [Float](repeating: 0, count: count)
        let counts = try vectors.withUnsafeMutableBufferPointer { (output) throws(InferenceError) -> LookupCounts in
            try lookup(batches, into: output, replica: replica)
        }
        buffer.writeLittleEndianFloats(vectors)
        return counts
    }

    /// `lookup(_:appendingTo:replica:)` of one batch.
    package func lookup(_ batch: Batch, appendingTo buffer: inout ByteBuffer, replica: Int = 0) throws(InferenceError) -> LookupCounts {
        try lookup([batch], appendingTo: &buffer, replica: replica)
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

    /// The little-endian FP32 values of the readable bytes.
    func readableLittleEndianFloats() -> [Float] {
        let count = readableBytes / 4
        return [Float](unsafeUninitializedCapacity: count) { floats, initialized in
            withUnsafeReadableBytes { bytes in
                for i in 0..<count {
                    floats[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
            }
            initialized = count
        }
    }
}
