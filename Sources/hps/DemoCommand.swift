import HPSDemo
import ArgumentParser
import HPS
import HPSCUDA

/// `hps demo`: the seed notebook, unfused and fused.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Reproduce the HPS table-fusion notebook: lookups → concat → Dense(1), unfused and fused."
    )

    @Option(help: "Where lookups run: auto, cpu or gpu.")
    var device: String = "auto"
    @Option(help: "Batches timed after one warm-up batch.")
    var iterations = 100
    @OptionGroup var sizes: SizeOptions
    @Option(help: "Threads per lookup (default: all cores).")
    var threads: Int?
    @Option(help: "Keep the generated model in this folder instead of a temporary one.")
    var output: String?
    @Flag(help: "Print one JSON object.")
    var json = false
    @Option(help: "GPU cache type: static, dynamic or uvm (default: the configuration's, dynamic as in the notebook).")
    var cacheType: String?

    func run() throws {
        try reportingErrors {
            let target = try Device.resolve(device)
            let model = try sizes.model()
            let temporary = output == nil ? try TemporaryDirectory(prefix: "hps-demo") : nil
            defer { temporary?.remove() }
            let directory = output ?? temporary!.path
            try model.write(to: directory)
            let result: SeedDemo.Result
            switch target {
            case .cpu:
                result = try SeedDemo(model: model, iterations: iterations, threads: threads ?? availableCores).run(directory: directory)
            case .gpu(let index):
                var type: EmbeddingCacheType? = nil
                if let cacheType {
                    guard let parsed = EmbeddingCacheType(rawValue: cacheType) else {
                        throw ValidationError("--cache-type must be static, dynamic or uvm, not \(cacheType)")
                    }
                    type = parsed
                }
                result = try GPUSeedDemo(model: model, iterations: iterations, deviceIndex: index, cacheType: type).run(directory: directory)
            }
            if json {
                print(result.jsonValue.serialized())
            } else {
                print("HPS table fusion demo on the \(result.device): \(model.tables) tables × \(model.vocab) keys, vec size \(model.dim), batch \(model.batchSize) × \(model.keysPerSample) keys per table\(target == .cpu ? ", \(result.threads) thread(s)" : "")")
                for (name, timing) in [("unfused", result.unfused), ("fused", result.fused)] {
                    print("[INFO] \(name): elapsed time for \(iterations) iterations: \(format(timing.elapsedSeconds, 4)) seconds; per batch p50 \(format(timing.p50Microseconds, 1)) µs, p99 \(format(timing.p99Microseconds, 1)) µs; lookup p50 \(format(timing.lookupP50Microseconds, 1)) µs")
                }
                print("speedup of fusion: \(format(result.speedup, 2))×")
                let stored = model.vectorStorage == .fp32 ? "" : " (stored as \(model.vectorStorage.rawValue))"
                print("predictions match: \(result.predictionsMatch); looked-up vectors match the model files\(stored): \(result.vectorsMatchFiles)")
                if let difference = result.predictionDifference {
                    print("predictions with vector_storage \(model.vectorStorage.rawValue) against fp32: largest |difference| \(difference)")
                }
                if output != nil { print("model files and hps.json: \(directory)") }
            }
            if !result.predictionsMatch || !result.vectorsMatchFiles {
                throw CheckFailure(reason: "fused and unfused lookups disagree with each other or with the model files")
            }
        }
    }
}

/// A self-check of a command that failed.
struct CheckFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// Where lookups run.
enum Device: Equatable {
    case cpu
    case gpu(Int)

    /// Resolves `--device`: `gpu` needs a GPU and says why there is none;
    /// `auto` takes GPU 0 when one loads, else the CPU, with a note saying why.
    static func resolve(_ name: String, index: Int = 0) throws -> Device {
        switch name {
        case "cpu": return .cpu
        case "gpu":
            _ = try CUDADevice(index: index)
            return .gpu(index)
        case "auto":
            do {
                _ = try CUDADevice(index: index)
                return .gpu(index)
            } catch {
                note("hps: running on the CPU because \(error)")
                return .cpu
            }
        default:
            throw ValidationError("--device must be auto, cpu or gpu, not \(name)")
        }
    }
}

/// `value` with `digits` decimals.
func format(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
    } else if digits > 0 {
        text += "." + String(repeating: "0", count: digits)
    }
    return text
}
