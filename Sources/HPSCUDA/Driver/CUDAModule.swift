/// A compiled module and its kernels.
public final class CUDAModule: @unchecked Sendable {
    let handle: OpaquePointer?
    let device: CUDADevice

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

    /// The kernel `name` (an `extern "C"` function).
    public func kernel(_ name: String) throws(CUDAError) -> CUDAKernel {
        var function: OpaquePointer? = nil
        try device.driver.check(device.driver.cuModuleGetFunction(&function, handle, name), "cuModuleGetFunction(\(name))")
        return CUDAKernel(function: function, name: name, module: self)
    }
}

/// A kernel of a loaded module.
public struct CUDAKernel: @unchecked Sendable {
    let function: OpaquePointer?
    /// The kernel's name.
    public let name: String
    let module: CUDAModule

    /// Launches with the arguments, each a value the kernel takes by value
    /// (device addresses as UInt64, counts as Int32, and so on).
    public func launch(grid: Int, block: Int, sharedBytes: Int = 0, stream: CUDAStream,
                       _ arguments: [any BitwiseCopyable]) throws(CUDAError) {
        // Each argument gets its own storage; the driver reads them during the call.
        var storage: [UnsafeMutableRawPointer?] = []
        defer { for p in storage { p?.deallocate() } }
        for argument in arguments {
            let size = MemoryLayout.size(ofValue: argument)
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(8, size), alignment: 8)
            withUnsafeBytes(of: argument) { p.copyMemory(from: $0.baseAddress!, byteCount: size) }
            storage.append(p)
        }
        let driver = module.device.driver
        let result = storage.withUnsafeMutableBufferPointer { params in
            driver.cuLaunchKernel(function, UInt32(max(1, grid)), 1, 1, UInt32(block), 1, 1, UInt32(sharedBytes),
                                  stream.handle, params.baseAddress, nil)
        }
        try driver.check(result, "cuLaunchKernel(\(name))")
    }
}
