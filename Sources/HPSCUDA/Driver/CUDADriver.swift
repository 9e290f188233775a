import HPS
import Glibc

/// The CUDA driver API, opened from `libcuda.so.1` with dlopen at first use,
/// so that the binary builds and runs on machines without a GPU.
///
/// Every call's result is checked and turned into `CUDAError.driver` with the
/// error's name. Thread safety: the function table is immutable; the driver
/// itself is thread-safe.
public final class CUDADriver: Sendable {
    typealias Result = Int32
    typealias Context = OpaquePointer?
    typealias Handle = OpaquePointer?

    let cuInit: @convention(c) (UInt32) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Result
    let cuMemFree: @convention(c) (UInt64) -> Result
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let cuMemHostGetDevicePointer: @convention(c) (UnsafeMutablePointer<UInt64>, UnsafeMutableRawPointer?, UInt32) -> Result
    let cuMemcpyHtoD: @convention(c) (UInt64, UnsafeRawPointer?, Int) -> Result
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int) -> Result
    let cuMemcpyDtoD: @convention(c) (UInt64, UInt64, Int) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (UInt64, UnsafeRawPointer?, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, UInt64, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoDAsync: @convention(c) (UInt64, UInt64, Int, OpaquePointer?) -> Result
    let cuMemsetD32: @convention(c) (UInt64, UInt32, Int) -> Result
    let cuMemsetD32Async: @convention(c) (UInt64, UInt32, Int, OpaquePointer?) -> Result
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuStreamDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> Result
    let cuStreamWaitEvent: @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> Result
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> Result
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer?) -> Result
    let cuModuleUnload: @convention(c) (OpaquePointer?) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Result
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Result
    let cuGetErrorName: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result
    /// A kernel parameter's offset and size (CUDA 12.4 and later; nil before).
    let cuFuncGetParamInfo: (@convention(c) (OpaquePointer?, Int, UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Result)?

    /// The library that was loaded.
    public let libraryPath: String

    private init() throws(CUDAError) {
        let candidates = getenv("HPS_LIBCUDA").map { [String(cString: $0)] } ?? ["libcuda.so.1", "libcuda.so"]
        let lib = try SharedLibrary(name: "the CUDA driver (libcuda.so.1)", candidates: candidates)
        libraryPath = lib.name
        cuInit = try lib.function("cuInit")
        cuDeviceGetCount = try lib.function("cuDeviceGetCount")
        cuDeviceGet = try lib.function("cuDeviceGet")
        cuDeviceGetName = try lib.function("cuDeviceGetName")
        cuDeviceGetAttribute = try lib.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try lib.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try lib.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try lib.function("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.function("cuCtxSynchronize")
        cuMemAlloc = try lib.function("cuMemAlloc_v2")
        cuMemFree = try lib.function("cuMemFree_v2")
        cuMemHostAlloc = try lib.function("cuMemHostAlloc")
        cuMemFreeHost = try lib.function("cuMemFreeHost")
        cuMemHostGetDevicePointer = try lib.function("cuMemHostGetDevicePointer_v2")
        cuMemcpyHtoD = try lib.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try lib.function("cuMemcpyDtoH_v2")
        cuMemcpyDtoD = try lib.function("cuMemcpyDtoD_v2")
        cuMemcpyHtoDAsync = try lib.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try lib.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try lib.function("cuMemcpyDtoDAsync_v2")
        cuMemsetD32 = try lib.function("cuMemsetD32_v2")
        cuMemsetD32Async = try lib.function("cuMemsetD32Async")
        cuStreamCreate = try lib.function("cuStreamCreate")
        cuStreamDestroy = try lib.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.function("cuStreamSynchronize")
        cuStreamWaitEvent = try lib.function("cuStreamWaitEvent")
        cuEventCreate = try lib.function("cuEventCreate")
        cuEventDestroy = try lib.function("cuEventDestroy_v2")
        cuEventRecord = try lib.function("cuEventRecord")
        cuEventSynchronize = try lib.function("cuEventSynchronize")
        cuEventElapsedTime = try lib.function("cuEventElapsedTime")
        cuModuleLoadData = try lib.function("cuModuleLoadData")
        cuModuleUnload = try lib.function("cuModuleUnload")
        cuModuleGetFunction = try lib.function("cuModuleGetFunction")
        cuLaunchKernel = try lib.function("cuLaunchKernel")
        cuGetErrorName = try lib.function("cuGetErrorName")
        cuFuncGetParamInfo = lib.optionalFunction("cuFuncGetParamInfo")
        try check(cuInit(0), "cuInit")
    }

    private static let loaded = Locked<Swift.Result<CUDADriver, CUDAError>?>(nil)

    /// The driver, loaded and initialized on first use; the same result
    /// (driver or error) for every later call.
    public static func shared() throws(CUDAError) -> CUDADriver {
        let result = loaded.withLock { loaded in
            if let loaded { return loaded }
            let result: Swift.Result<CUDADriver, CUDAError>
            do throws(CUDAError) { result = .success(try CUDADriver()) } catch { result = .failure(error) }
            loaded = result
            return result
        }
        return try result.get()
    }

    /// Throws `CUDAError.driver` with the error's name unless `code` is CUDA_SUCCESS.
    @inline(__always)
    func check(_ code: Result, _ call: String) throws(CUDAError) {
        guard code != 0 else { return }
        var name: UnsafePointer<CChar>? = nil
        _ = cuGetErrorName(code, &name)
        throw .driver(call: call, code: code, name: name.map { String(cString: $0) } ?? "CUDA_ERROR_UNKNOWN")
    }

    /// The number of devices.
    public func deviceCount() throws(CUDAError) -> Int {
        var count: Int32 = 0
        try check(cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }
}
