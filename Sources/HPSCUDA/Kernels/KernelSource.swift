import HPS

/// The CUDA C of the GPU lookups (`Lookup.cu`), compiled by NVRTC once per
/// process and specialized by `#define`s for the vec size (DIM), the key
/// type (KEY_T), the threads per key (LANES) and how a table's rows are
/// stored (STORAGE, ROW_BYTES).
enum KernelSource {
    /// Threads that cooperate on one key: enough for one float4 (or one float,
    /// when the vec size is not a multiple of 4) each, at most a warp; for a
    /// quantized table, half as many (each lane decodes two loads of 4 codes;
    /// one element each when the vec size is not a multiple of 8).
    static func lanes(dim: Int, storage: VectorStorage = .fp32) -> Int {
        let units = storage == .fp32 ? (dim % 4 == 0 ? dim / 4 : dim) : (dim % 8 == 0 ? dim / 8 : dim)
        var lanes = 1
        while lanes < units && lanes < 32 { lanes *= 2 }
        return lanes
    }

    /// The source specialized for one vec size and key type, with the
    /// tuning's compile-time switches.
    /// - Parameter halfOutput: `hps_lookup` writes float16 elements (OUT_FP16).
    static func lookup(dim: Int, int64Keys: Bool, storage: VectorStorage = .fp32, halfOutput: Bool = false,
                       tuning: GPUTuning = GPUTuning()) -> String {
        """
        #define DIM \(dim)
        #define LANES \(lanes(dim: dim, storage: storage))
        #define KEY_T \(int64Keys ? "long long" : "unsigned int")
        #define STORAGE \(storage.kernelCode)
        #define ROW_BYTES \(storage.rowBytes(dim: dim))
        \(halfOutput ? "#define OUT_FP16 1\n" : "")\(tuning.defineLines)\(body)
        """
    }

    /// The kernels' CUDA C (`Lookup.cu`), as embedded in the binary.
    static let body = String(decoding: PackageResources.Lookup_cu, as: UTF8.self)
}
