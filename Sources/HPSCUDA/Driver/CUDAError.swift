/// Errors of the GPU path, each one sentence a user can act on.
public enum CUDAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A shared library could not be opened.
    case libraryNotFound(library: String, tried: [String], reason: String)
    /// A library lacks a function this build calls.
    case symbolMissing(library: String, symbol: String)
    /// A driver call failed.
    case driver(call: String, code: Int32, name: String)
    /// An NVRTC call failed.
    case nvrtc(call: String, code: Int32, message: String)
    /// NVRTC rejected a kernel source.
    case compile(kernel: String, log: String)
    /// The driver loaded but reports no device.
    case noDevice
    /// The configuration or request names a device that does not exist.
    case noSuchDevice(index: Int, count: Int)
    /// A GPU tuning setting that is unknown or out of range.
    case invalidTuning(setting: String, reason: String)
    /// A kernel launched with arguments that do not match its parameters.
    case launchArguments(kernel: String, reason: String)
    /// A request the GPU path cannot serve.
    case unsupported(String)

    /// One sentence a user can act on.
    public var description: String {
        switch self {
        case let .libraryNotFound(library, tried, reason):
            return "no GPU: \(library) could not be loaded (tried \(tried.joined(separator: ", "))): \(reason)"
        case let .symbolMissing(library, symbol):
            return "no GPU: \(library) has no \(symbol); the installed CUDA is too old for this build"
        case let .driver(call, code, name):
            return "CUDA call \(call) failed with \(name) (\(code))"
        case let .nvrtc(call, code, message):
            return "NVRTC call \(call) failed with \(message) (\(code))"
        case let .compile(kernel, log):
            return "NVRTC could not compile \(kernel): \(log)"
        case .noDevice:
            return "no GPU: the CUDA driver loaded but found no device"
        case let .noSuchDevice(index, count):
            return "GPU \(index) does not exist; this machine has \(count) GPU(s)"
        case let .invalidTuning(setting, reason):
            return "GPU tuning \(setting): \(reason)"
        case let .launchArguments(kernel, reason):
            return "kernel \(kernel) was launched with the wrong arguments: \(reason)"
        case let .unsupported(reason):
            return reason
        }
    }
}
