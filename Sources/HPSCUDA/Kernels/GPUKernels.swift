public import HPS

/// The compiled kernels of one device, one module per (vec size, key type, row storage),
/// compiled by NVRTC on first use and kept for the life of the process.
public final class GPUKernels: Sendable {
    /// The device.
    public let device: CUDADevice
    /// The launch shapes and compile-time switches the kernels use.
    public let tuning: GPUTuning
    private let modules = Locked<[String: CUDAModule]>([:])

    /// Kernels for `device`, with the default tuning.
    public init(device: CUDADevice) {
        self.device = device
        self.tuning = GPUTuning()
    }

    /// Kernels for `device`, tuned as `tuning` says.
    /// - Throws: `CUDAError.invalidTuning` for a tuning setting out of range.
    public init(device: CUDADevice, tuning: GPUTuning) throws(CUDAError) {
        try tuning.validate()
        self.device = device
        self.tuning = tuning
    }

    /// The module specialized for `dim`, the key type and how a table's rows
    /// are stored; with `halfOutput`, its `hps_lookup` writes float16.
    func module(dim: Int, int64Keys: Bool, storage: VectorStorage = .fp32, halfOutput: Bool = false) throws(CUDAError) -> CUDAModule {
        let name = "hps_lookup_d\(dim)_\(int64Keys ? "i64" : "u32")\(storage == .fp32 ? "" : "_\(storage.rawValue)")\(halfOutput ? "_out16" : "").cu"
        if let module = modules.withLock({ $0[name] }) { return module }
        let source = KernelSource.lookup(dim: dim, int64Keys: int64Keys, storage: storage, halfOutput: halfOutput, tuning: tuning)
        let module = try CUDAModule(device: device, source: source, name: name)
        modules.withLock { $0[name] = module }
        return module
    }

    /// The lookup kernel for `dim`, the key type and rows stored as `storage` says.
    public func lookup(dim: Int, int64Keys: Bool, storage: VectorStorage = .fp32) throws(CUDAError) -> CUDAKernel {
        try module(dim: dim, int64Keys: int64Keys, storage: storage).kernel("hps_lookup")
    }

    /// The dense head's kernel.
    public func dense() throws(CUDAError) -> CUDAKernel {
        try module(dim: 4, int64Keys: true).kernel("hps_dense")
    }

    /// The concat kernel of the unfused model.
    public func concat() throws(CUDAError) -> CUDAKernel {
        try module(dim: 4, int64Keys: true).kernel("hps_concat")
    }
}
