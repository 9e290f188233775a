/// The choices of the GPU lookups that measurements settle, as one value
/// (`GPUCacheFactory(tuning:)`, `GPUKernels(device:tuning:)`): how many
/// threads a block has, how many warps a launch aims for on each
/// multiprocessor before it gives a warp fewer keys, how full a static
/// table's index gets, and compile-time switches of the kernels.
///
/// The defaults are what the benchmarks chose on an H100 and an H200
/// (`docs/archive/benchmarks-log.md`); `hps bench --device gpu
/// --gpu-tuning` and `scripts/gpu-tuning.sh` compare others.
///
/// ```swift
/// var tuning = GPUTuning()
/// tuning.blockThreads = 128
/// let factory = GPUCacheFactory(tuning: tuning)
/// ```
public struct GPUTuning: Sendable, Hashable {
    /// Threads per block of the lookup kernel: a multiple of 32 from 32 to 1,024.
    public var blockThreads = 256
    /// Warps per multiprocessor a lookup launch aims for before it gives
    /// each warp fewer than 32 keys (at least 1).
    public var fillWarpsPerMultiprocessor = 4
    /// The most a static table's index is filled, above 0.1 and at most 0.95.
    public var indexLoad = 0.85
    /// Compile-time switches, each put in front of the kernels as
    /// `#define NAME VALUE` (for example `STORE_STREAMING` = "1"): names
    /// the kernels test with `#ifdef`, for measurements; none by default.
    public var defines: [String: String] = [:]

    /// The defaults.
    public init() {}

    /// The settings written as `hps bench --gpu-tuning` takes them: comma-separated
    /// `block=N`, `fill-warps=N`, `index-load=X` and `define=NAME[=VALUE]`, e.g.
    /// `block=128,fill-warps=8,define=STORE_STREAMING`. Unnamed settings keep their defaults.
    /// - Throws: `CUDAError.invalidTuning` naming the setting that is unknown or out of range.
    public init(parsing text: String) throws(CUDAError) {
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace }
            guard parts.count == 2, !parts[1].isEmpty else {
                throw .invalidTuning(setting: String(item), reason: "each setting is NAME=VALUE (block, fill-warps, index-load or define)")
            }
            switch parts[0] {
            case "block":
                guard let value = Int(parts[1]) else { throw .invalidTuning(setting: String(item), reason: "block takes a whole number") }
                blockThreads = value
            case "fill-warps":
                guard let value = Int(parts[1]) else { throw .invalidTuning(setting: String(item), reason: "fill-warps takes a whole number") }
                fillWarpsPerMultiprocessor = value
            case "index-load":
                guard let value = Double(parts[1]) else { throw .invalidTuning(setting: String(item), reason: "index-load takes a number") }
                indexLoad = value
            case "define":
                let define = parts[1].split(separator: "=", maxSplits: 1).map(String.init)
                defines[define[0]] = define.count > 1 ? define[1] : "1"
            default:
                throw .invalidTuning(setting: String(item), reason: "unknown setting \(parts[0]) (known: block, fill-warps, index-load, define)")
            }
        }
        try validate()
    }

    /// Checks every setting's range.
    /// - Throws: `CUDAError.invalidTuning` naming the first setting out of range.
    public func validate() throws(CUDAError) {
        guard blockThreads >= 32, blockThreads <= 1024, blockThreads % 32 == 0 else {
            throw .invalidTuning(setting: "block=\(blockThreads)", reason: "threads per block must be a multiple of 32 from 32 to 1024")
        }
        guard fillWarpsPerMultiprocessor >= 1 else {
            throw .invalidTuning(setting: "fill-warps=\(fillWarpsPerMultiprocessor)", reason: "warps per multiprocessor must be at least 1")
        }
        guard indexLoad > 0.1, indexLoad <= 0.95 else {
            throw .invalidTuning(setting: "index-load=\(indexLoad)", reason: "the index's load must be above 0.1 and at most 0.95")
        }
        for name in defines.keys {
            let valid = name.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
                && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            guard valid else {
                throw .invalidTuning(setting: "define=\(name)", reason: "a define's name must be a C identifier")
            }
            guard !defines[name]!.contains(where: \.isNewline) else {
                throw .invalidTuning(setting: "define=\(name)", reason: "a define's value must be one line")
            }
        }
    }

    /// The `#define` lines in front of the kernels, in name order (so that
    /// equal tunings compile, and are cached, alike).
    var defineLines: String {
        defines.keys.sorted().map { "#define \($0) \(defines[$0]!)\n" }.joined()
    }
}

extension Substring {
    fileprivate var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
