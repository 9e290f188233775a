/// How the tiers of a model store its vectors (`vector_storage`, an extension
/// of ours; HugeCTR's `fp8_quant: true` means `fp8`).
///
/// Model files stay float32 on disk; a tier quantizes rows as it stores them
/// (at load and for every update) and lookups return float32. Every format
/// but `fp32` trades accuracy for bytes: `hps inspect --storage` states the
/// error per table.
///
/// A stored row is its parameters (float32, in 8 bytes) then its codes,
/// padded to a multiple of 8 bytes (`rowBytes(dim:)`): the same bytes on the
/// CPU and on the GPU, so rows quantized on the host are copied to the
/// device as they are. Why 8: the GPU reads 8 codes per load, and a row's
/// codes then start on an 8-byte boundary (16 for fp16 and bf16 at a vec
/// size that is a multiple of 8), which lets a warp read several short rows
/// at once.
public enum VectorStorage: String, Sendable, Equatable, CaseIterable {
    /// 4 bytes per element, exact (the default).
    case fp32
    /// IEEE half precision: 2 bytes per element; magnitudes above 65504 cannot be stored.
    case fp16
    /// bfloat16 (float32's exponent, 8 bits of significand): 2 bytes per element.
    case bf16
    /// One unsigned byte per element with a float32 scale and bias per row:
    /// x ≈ q × scale + bias, scale = (max − min) / 255, bias = min (FBGEMM's row-wise int8).
    case int8
    /// fp8 e4m3 (HugeCTR's `fp8_quant`): one byte per element with a float32
    /// scale per row, x ≈ fp8 × scale, scale = max |x| / 448.
    case fp8

    /// Bytes of one element's code.
    public var codeBytes: Int {
        switch self {
        case .fp32: 4
        case .fp16, .bf16: 2
        case .int8, .fp8: 1
        }
    }

    /// Float32 parameters stored ahead of each row's codes: int8's scale and
    /// bias, fp8's scale.
    public var rowParameters: Int {
        switch self {
        case .fp32, .fp16, .bf16: 0
        case .int8: 2
        case .fp8: 1
        }
    }

    /// Bytes ahead of a row's codes: its parameters, padded to 8.
    public var parameterBytes: Int { rowParameters == 0 ? 0 : 8 }

    /// Bytes one stored row of `dim` elements takes: `dim` floats for fp32;
    /// otherwise parameters, codes, and padding to a multiple of 8 bytes.
    public func rowBytes(dim: Int) -> Int {
        self == .fp32 ? dim * 4 : (parameterBytes + dim * codeBytes + 7) & ~7
    }

    /// The code the GPU kernels are specialized with (`STORAGE` in `Lookup.cu`).
    package var kernelCode: Int {
        switch self {
        case .fp32: 0
        case .fp16: 1
        case .bf16: 2
        case .int8: 3
        case .fp8: 4
        }
    }
}
