/// One GPU with its primary context made current on the calling thread.
///
/// Thread safety: call `makeCurrent()` on each thread before driver calls;
/// the objects made from a device belong to its context.
public final class CUDADevice: @unchecked Sendable {
    /// The driver.
    public let driver: CUDADriver
    /// The device's ordinal.
    public let index: Int
    /// The device's name, e.g. "NVIDIA H200".
    public let name: String
    /// Compute capability (major, minor).
    public let computeCapability: (major: Int, minor: Int)
    /// Streaming multiprocessors.
    public let multiprocessors: Int
    /// Total device memory in bytes.
    public let totalMemory: Int
    let context: OpaquePointer?

    /// Opens device `index`.
    public init(index: Int = 0) throws(CUDAError) {
        driver = try CUDADriver.shared()
        let count = try driver.deviceCount()
        guard count > 0 else { throw .noDevice }
        guard index >= 0 && index < count else { throw .noSuchDevice(index: index, count: count) }
        self.index = index
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(index)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        name = nameBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var major: Int32 = 0, minor: Int32 = 0, sms: Int32 = 0
        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76, MULTIPROCESSOR_COUNT = 16
        try driver.check(driver.cuDeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute")
        try driver.check(driver.cuDeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute")
        try driver.check(driver.cuDeviceGetAttribute(&sms, 16, device), "cuDeviceGetAttribute")
        computeCapability = (Int(major), Int(minor))
        multiprocessors = Int(sms)
        var memory = 0
        try driver.check(driver.cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem")
        totalMemory = memory
        var context: OpaquePointer? = nil
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        self.context = context
        try makeCurrent()
    }

    /// Makes this device's context current on the calling thread.
    public func makeCurrent() throws(CUDAError) {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// NVRTC's architecture option for this device, e.g. `--gpu-architecture=sm_90`.
    public var architectureOption: String {
        "--gpu-architecture=sm_\(computeCapability.major)\(computeCapability.minor)"
    }

    /// Waits for all work on the device.
    public func synchronize() throws(CUDAError) {
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
    }
}
