public import HPS

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
    /// A model whose `deployed_device_list` names a GPU that does not exist.
    case modelDevice(model: String, device: Int, count: Int)
    /// A table with a dynamic GPU cache and no CPU tier behind it to fill its misses.
    case noTierBelow(table: String)
    /// What a GPU table or cache is given (the tier below it, a member's
    /// vectors) has another shape than it holds: `found` against `expected`.
    case layoutMismatch(table: String, expected: String, found: String)
    /// More of `what` (rows, members) than a GPU table or cache addresses.
    case capacity(table: String, what: String, limit: Int, requested: Int)
    /// Keys in device memory of another width than the table's keys.
    case deviceKeyWidth(given: Int, expected: Int)
    /// Lookup runs whose key counts do not add up to the keys given.
    case runKeyCount(runs: Int, keys: Int)
    /// A row a GPU table's `vector_storage` cannot hold (`StoreError.unrepresentable`).
    case storage(StoreError)

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
        case let .modelDevice(model, device, count):
            return "model \(model) is deployed on GPU \(device) (deployed_device_list), which does not exist; this machine has \(count) GPU(s)"
        case let .noTierBelow(table):
            return "\(table) has no CPU tier behind its dynamic GPU cache; enable volatile_db or persistent_db"
        case let .layoutMismatch(table, expected, found):
            return "\(table) needs \(expected); it was given \(found)"
        case let .capacity(table, what, limit, requested):
            return "\(table) holds at most \(limit) \(what), not \(requested)"
        case let .deviceKeyWidth(given, expected):
            return "the device keys are \(given)-byte keys but this table reads \(expected)-byte keys"
        case let .runKeyCount(runs, keys):
            return "the runs hold \(runs) keys but \(keys) keys were given"
        case let .storage(error):
            return error.description
        }
    }
}
