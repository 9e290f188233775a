import ArgumentParser
import HPS

/// `hps inspect`: describes a configuration or a sparse model folder.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a configuration or a sparse model folder: tables, key counts, vec sizes, key ranges, overlaps, and the error of quantized storage."
    )

    @Argument(help: "An HPS JSON configuration or a sparse model folder.")
    var path: String
    @Option(name: .customLong("storage"),
            help: "A vector_storage (fp32, fp16, bf16, int8, fp8) whose error against the files each table reports: max and mean absolute and relative error; repeat for several.")
    var storages: [String] = []

    func run() throws {
        try reportingErrors {
            let formats = try storages.map { name in
                guard let storage = VectorStorage(rawValue: name) else {
                    throw ValidationError("--storage \(name) is not a vector_storage; use one of \(VectorStorage.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return storage
            }
            let inspection = try ModelInspection(path: path, storages: formats)
            print(inspection.report(), terminator: "")
        }
    }
}
