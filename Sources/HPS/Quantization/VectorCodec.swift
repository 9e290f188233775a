/// Quantizes rows of float32 into a `VectorStorage`'s stored rows and back:
/// the one implementation every tier and the GPU's host side use, so that a
/// row reads back the same from each of them.
///
/// Shapes: a row is `dim` floats; a stored row is `storage.rowBytes(dim:)`
/// bytes, its parameters (float32) first, then its codes. Decoding writes
/// every element of its output. Decoding computes int8 as `q × scale + bias`
/// (two roundings: no fused multiply-add, which x86-64's baseline lacks and
/// the kernels are told not to use here) and fp8 as `fp8 × scale`, as the
/// GPU kernels do, so the CPU and the GPU return identical floats.
///
/// ```swift
/// let codec = VectorCodec(storage: .int8, dim: 128)
/// var stored = [UInt8](repeating: 0, count: codec.rowBytes)
/// let bad = row.withUnsafeBufferPointer { codec.encode($0.baseAddress!, into: &stored) }   // nil: stored
/// ```
///
/// Thread safety: a value type without state; use it from any thread.
package struct VectorCodec: Sendable {
    /// The format.
    package let storage: VectorStorage
    /// Floats per row.
    package let dim: Int
    /// Bytes per stored row.
    package let rowBytes: Int
    /// Bytes of parameters before the codes.
    let parameterBytes: Int

    package init(storage: VectorStorage, dim: Int) {
        self.storage = storage
        self.dim = dim
        rowBytes = storage.rowBytes(dim: dim)
        parameterBytes = storage.parameterBytes
    }

    /// The largest magnitude e4m3 holds (1.75 × 2⁸).
    static let fp8Maximum: Float = 448

    // MARK: Encoding

    /// Encodes one row into `stored` (`rowBytes` bytes, all written).
    /// - Returns: nil when stored; else the index of the first element the
    ///   format cannot hold (NaN or an infinity, for every format but fp32;
    ///   beyond ±65504 for fp16; a row whose max − min overflows float32 for
    ///   int8), and `stored` is then undefined.
    @inline(__always)
    package func encode(_ row: UnsafePointer<Float>, into stored: UnsafeMutableRawPointer) -> Int? {
        switch storage {
        case .fp32:
            stored.copyMemory(from: row, byteCount: dim &* 4)
            return nil
        case .fp16:
            let codes = stored.assumingMemoryBound(to: UInt16.self)
            for e in 0..<dim {
                let h = Float16(row[e])
                guard h.isFinite else { return e }
                codes[e] = h.bitPattern
            }
        case .bf16:
            let codes = stored.assumingMemoryBound(to: UInt16.self)
            for e in 0..<dim {
                guard let code = Self.bf16(row[e]) else { return e }
                codes[e] = code
            }
        case .int8:
            if let bad = firstNonFinite(row) { return bad }
            var lo = row[0], hi = row[0]
            for e in 1..<max(1, dim) { lo = min(lo, row[e]); hi = max(hi, row[e]) }
            let range = hi - lo
            guard range.isFinite else { return (0..<dim).first { row[$0] == hi } ?? 0 }
            var scale = range / 255
            // A constant row (or one whose range underflows) is its bias.
            if !scale.isNormal { scale = 0 }
            let parameters = stored.assumingMemoryBound(to: Float.self)
            parameters[0] = scale
            parameters[1] = lo
            let codes = (stored + parameterBytes).assumingMemoryBound(to: UInt8.self)
            for e in 0..<dim {
                if scale == 0 { codes[e] = 0; continue }
                let q = ((row[e] - lo) / scale).rounded(.toNearestOrEven)
                codes[e] = UInt8(min(255, max(0, q)))
            }
        case .fp8:
            if let bad = firstNonFinite(row) { return bad }
            var amax: Float = 0
            for e in 0..<dim { amax = max(amax, row[e].magnitude) }
            var scale = amax / Self.fp8Maximum
            if !scale.isNormal { scale = 0 }
            stored.assumingMemoryBound(to: Float.self)[0] = scale
            stored.assumingMemoryBound(to: Float.self)[1] = 0  // padding
            let codes = (stored + parameterBytes).assumingMemoryBound(to: UInt8.self)
            for e in 0..<dim {
                codes[e] = scale == 0 ? 0 : Self.fp8(row[e] / scale)
            }
        }
        // Padding, so stored rows compare and hash by their bytes.
        let used = parameterBytes &+ dim &* storage.codeBytes
        if used < rowBytes { (stored + used).initializeMemory(as: UInt8.self, repeating: 0, count: rowBytes &- used) }
        return nil
    }

    /// Encodes a row that this codec decoded (what a tier returns for a
    /// quantized table) so that it decodes to the same floats again: what a
    /// GPU cache in front of the tiers stores. fp16 and bf16 do so by
    /// `encode` itself. For int8 and fp8 the scale `encode` derives from the
    /// decoded row may differ from the stored one by a rounding, which moves
    /// every element; the scales a few ulps either side are tried, and the
    /// first whose row decodes to the same floats is kept. A row no scale
    /// reproduces (not one this codec decoded) keeps `encode`'s result.
    /// - Parameter scratch: `dim` floats to decode candidates into.
    /// - Returns: as `encode`.
    package func encodeDecoded(_ row: UnsafePointer<Float>, into stored: UnsafeMutableRawPointer,
                               scratch: UnsafeMutablePointer<Float>) -> Int? {
        if let bad = encode(row, into: stored) { return bad }
        guard storage == .int8 || storage == .fp8 else { return nil }
        func reproduces() -> Bool {
            decode(UnsafeRawPointer(stored), into: scratch)
            for e in 0..<dim where scratch[e].bitPattern != row[e].bitPattern { return false }
            return true
        }
        if reproduces() { return nil }
        let parameters = stored.assumingMemoryBound(to: Float.self)
        let derived = parameters[0]
        guard derived != 0 else { return nil }
        let codes = (stored + parameterBytes).assumingMemoryBound(to: UInt8.self)
        let bias = storage == .int8 ? parameters[1] : 0
        var below = derived, above = derived
        for _ in 0..<8 {
            below = below.nextDown
            above = above.nextUp
            for side in 0..<2 {
                let scale = side == 0 ? below : above
                guard scale.isNormal && scale > 0 else { continue }
                parameters[0] = scale
                for e in 0..<dim {
                    if storage == .int8 {
                        codes[e] = UInt8(min(255, max(0, ((row[e] - bias) / scale).rounded(.toNearestOrEven))))
                    } else {
                        codes[e] = Self.fp8(row[e] / scale)
                    }
                }
                if reproduces() { return nil }
            }
        }
        // Not a row this codec decoded: the closest encoding, as `encode` gives it.
        return encode(row, into: stored)
    }

    private func firstNonFinite(_ row: UnsafePointer<Float>) -> Int? {
        for e in 0..<dim where !row[e].isFinite { return e }
        return nil
    }

    /// bfloat16 by round to nearest even, or nil for NaN, an infinity, or a
    /// value that rounds to one.
    @inline(__always)
    static func bf16(_ x: Float) -> UInt16? {
        guard x.isFinite else { return nil }
        let bits = x.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        let code = UInt16(truncatingIfNeeded: rounded >> 16)
        return code & 0x7F80 == 0x7F80 ? nil : code
    }

    /// e4m3 (no infinities; 0x7F is NaN) by round to nearest even, saturated at ±448.
    @inline(__always)
    static func fp8(_ x: Float) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = min(x.magnitude, fp8Maximum)
        let magnitude: UInt8
        if a < 0x1p-6 {
            // Subnormal: multiples of 2⁻⁹ (a result of 8 is the smallest normal, code 8).
            magnitude = UInt8((a * 0x1p9).rounded(.toNearestOrEven))
        } else {
            var exponent = Int(a.exponent) + 7
            var mantissa = Int(((a.significand - 1) * 8).rounded(.toNearestOrEven))
            if mantissa == 8 { mantissa = 0; exponent += 1 }
            magnitude = UInt8(min(0x7E, exponent << 3 | mantissa))
        }
        return sign | magnitude
    }

    // MARK: Decoding

    /// Decodes one stored row into `dim` floats.
    @inline(__always)
    package func decode(_ stored: UnsafeRawPointer, into row: UnsafeMutablePointer<Float>) {
        switch storage {
        case .fp32:
            UnsafeMutableRawPointer(row).copyMemory(from: stored, byteCount: dim &* 4)
        case .fp16:
            let codes = stored.assumingMemoryBound(to: UInt16.self)
            for e in 0..<dim { row[e] = Self.float(fp16: codes[e]) }
        case .bf16:
            let codes = stored.assumingMemoryBound(to: UInt16.self)
            for e in 0..<dim { row[e] = Float(bitPattern: UInt32(codes[e]) << 16) }
        case .int8:
            let parameters = stored.assumingMemoryBound(to: Float.self)
            let scale = parameters[0], bias = parameters[1]
            let codes = (stored + parameterBytes).assumingMemoryBound(to: UInt8.self)
            for e in 0..<dim { row[e] = Float(codes[e]) * scale + bias }
        case .fp8:
            let scale = stored.assumingMemoryBound(to: Float.self)[0]
            let codes = (stored + parameterBytes).assumingMemoryBound(to: UInt8.self)
            Self.fp8Values.withUnsafeBufferPointer { values in
                for e in 0..<dim { row[e] = values[Int(codes[e])] * scale }
            }
        }
    }

    /// A half's value without a library call: its exponent and significand
    /// moved into a float's place and rescaled by 2¹¹², exact for normals and
    /// subnormals; infinities and NaN keep their bits.
    @inline(__always)
    static func float(fp16 h: UInt16) -> Float {
        let bits = UInt32(h)
        let sign = (bits & 0x8000) << 16
        let rest = (bits & 0x7FFF) << 13
        let value = rest >= 0x0F80_0000 ? Float(bitPattern: rest | 0x7F80_0000) : Float(bitPattern: rest) * 0x1p112
        return Float(bitPattern: value.bitPattern | sign)
    }

    /// The value of each e4m3 code (0x7F and 0xFF are NaN; `fp8(_:)` never writes them).
    static let fp8Values: [Float] = (0..<256).map { code in
        let magnitude = code & 0x7F
        let exponent = magnitude >> 3, mantissa = magnitude & 7
        let value: Float
        if magnitude == 0x7F {
            value = .nan
        } else if exponent == 0 {
            value = Float(mantissa) * 0x1p-9
        } else {
            value = Float(sign: .plus, exponent: exponent - 7, significand: 1 + Float(mantissa) / 8)
        }
        return code & 0x80 != 0 ? -value : value
    }
}
