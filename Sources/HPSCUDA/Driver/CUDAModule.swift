import HPS

/// A compiled module and its kernels.
public final class CUDAModule: @unchecked Sendable {
    let handle: OpaquePointer?
    let device: CUDADevice
    /// Each kernel looked up so far, by name: a lookup asks the driver for the
    /// function and each of its parameters, once per module, not once per call.
    /// (Not the kernels themselves: each holds its module, which would then never be unloaded.)
    private let kernels = Locked<[String: (function: UncheckedSendable<OpaquePointer?>, parameterSizes: [Int]?)]>([:])

    /// Loads a cubin.
    public init(device: CUDADevice, cubin: [UInt8]) throws(CUDAError) {
        self.device = device
        var handle: OpaquePointer? = nil
        let result = cubin.withUnsafeBytes { device.driver.cuModuleLoadData(&handle, $0.baseAddress) }
        try device.driver.check(result, "cuModuleLoadData")
        self.handle = handle
    }

    /// Compiles CUDA C for `device` with NVRTC and loads it, or loads the
    /// cubin an earlier process compiled for the same source, options and card.
    public convenience init(device: CUDADevice, source: String, name: String, options: [String] = []) throws(CUDAError) {
        let allOptions = [device.architectureOption, "--std=c++17"] + options
        let cache = KernelCache.fromEnvironment()
        let key = KernelCache.key(source: source, options: allOptions, card: device.name)
        // A cached cubin is an ELF file; anything else is recompiled and replaced.
        if let cubin = cache.load(key), cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]) {
            try self.init(device: device, cubin: cubin)
            return
        }
        let cubin = try NVRTC.shared().compile(source, name: name, options: allOptions)
        cache.store(key, cubin)
        try self.init(device: device, cubin: cubin)
    }

    deinit { _ = device.driver.cuModuleUnload(handle) }

    /// The kernel `name` (an `extern "C"` function), with the sizes of its
    /// parameters where the driver reports them (CUDA 12.4 and later).
    public func kernel(_ name: String) throws(CUDAError) -> CUDAKernel {
        if let found = kernels.withLock({ $0[name] }) {
            return CUDAKernel(function: found.function.value, name: name, module: self, parameterSizes: found.parameterSizes)
        }
        let driver = device.driver
        var function: OpaquePointer? = nil
        try driver.check(driver.cuModuleGetFunction(&function, handle, name), "cuModuleGetFunction(\(name))")
        var sizes: [Int]? = nil
        if let getParamInfo = driver.cuFuncGetParamInfo {
            var found: [Int] = []
            var offset = 0, size = 0
            // The driver answers CUDA_ERROR_INVALID_VALUE past the last parameter.
            while found.count < KernelArguments.maximumCount, getParamInfo(function, found.count, &offset, &size) == 0 {
                found.append(size)
            }
            // Every kernel here takes arguments: a driver that answers none
            // (an error at the first) cannot tell, and the launch goes unchecked.
            sizes = found.isEmpty ? nil : found
        }
        kernels.withLock { $0[name] = (UncheckedSendable(function), sizes) }
        return CUDAKernel(function: function, name: name, module: self, parameterSizes: sizes)
    }
}

/// A kernel of a loaded module.
public struct CUDAKernel: @unchecked Sendable {
    let function: OpaquePointer?
    /// The kernel's name.
    public let name: String
    let module: CUDAModule
    /// The size of each parameter, as the driver reports them; nil where it cannot.
    public let parameterSizes: [Int]?

    /// Launches with the arguments, each a value the kernel takes by value
    /// (device addresses as UInt64, `int` as Int32, `unsigned` as UInt32, and
    /// so on), packed on the stack: no allocation per launch.
    /// - Throws: `CUDAError.launchArguments` when the count or a size differs
    ///   from the kernel's parameters (checked where the driver reports
    ///   them), `CUDAError.driver` when the launch fails.
    public func launch<each Argument: BitwiseCopyable>(grid: Int, block: Int, sharedBytes: Int = 0, stream: CUDAStream,
                                                       _ arguments: repeat each Argument) throws(CUDAError) {
        let driver = module.device.driver
        let result = try KernelArguments.withPacked(repeat each arguments, kernel: name, expectedSizes: parameterSizes) { params in
            driver.cuLaunchKernel(function, UInt32(max(1, grid)), 1, 1, UInt32(block), 1, 1, UInt32(sharedBytes),
                                  stream.handle, params, nil)
        }
        try driver.check(result, "cuLaunchKernel(\(name))")
    }
}
