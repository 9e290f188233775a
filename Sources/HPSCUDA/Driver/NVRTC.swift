import HPS
import Glibc

/// NVRTC, the CUDA run-time compiler, opened with dlopen at first use.
/// Kernels are CUDA C compiled to a cubin for the device's architecture.
public final class NVRTC: Sendable {
    typealias Result = Int32
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Result
    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    /// The library that was loaded.
    public let libraryPath: String

    private init() throws(CUDAError) {
        var candidates: [String] = []
        if let path = getenv("HPS_NVRTC") { candidates.append(String(cString: path)) }
        for folder in ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"] {
            candidates += ["\(folder)/libnvrtc.so", "\(folder)/libnvrtc.so.13", "\(folder)/libnvrtc.so.12"]
        }
        candidates += ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]
        let lib = try SharedLibrary(name: "NVRTC (libnvrtc.so)", candidates: candidates)
        libraryPath = lib.name
        nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
    }

    private static let loaded = Locked<Swift.Result<NVRTC, CUDAError>?>(nil)

    /// NVRTC, loaded on first use; the same result for every later call.
    public static func shared() throws(CUDAError) -> NVRTC {
        let result = loaded.withLock { loaded in
            if let loaded { return loaded }
            let result: Swift.Result<NVRTC, CUDAError>
            do throws(CUDAError) { result = .success(try NVRTC()) } catch { result = .failure(error) }
            loaded = result
            return result
        }
        return try result.get()
    }

    private func check(_ code: Result, _ call: String) throws(CUDAError) {
        guard code != 0 else { return }
        throw .nvrtc(call: call, code: code, message: nvrtcGetErrorString(code).map { String(cString: $0) } ?? "unknown error")
    }

    /// Compiles CUDA C `source` to a cubin.
    /// - Parameters:
    ///   - name: the kernel file's name, for messages.
    ///   - options: NVRTC options, e.g. `--gpu-architecture=sm_90`.
    public func compile(_ source: String, name: String, options: [String]) throws(CUDAError) -> [UInt8] {
        var program: OpaquePointer? = nil
        try check(source.withCString { src in name.withCString { nvrtcCreateProgram(&program, src, $0, 0, nil, nil) } },
                  "nvrtcCreateProgram")
        defer { _ = nvrtcDestroyProgram(&program) }
        let cOptions = options.map { strdup($0) }
        defer { for option in cOptions { free(option) } }
        let status = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer {
            nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress)
        }
        if status != 0 {
            var size = 0
            _ = nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(1, size))
            _ = nvrtcGetProgramLog(program, &log)
            throw .compile(kernel: name, log: log.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        var size = 0
        try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [CChar](repeating: 0, count: size)
        try check(nvrtcGetCUBIN(program, &cubin), "nvrtcGetCUBIN")
        return cubin.map { UInt8(bitPattern: $0) }
    }
}
