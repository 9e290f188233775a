import HPSDemo
import ArgumentParser
import HPS

/// The sizes of the seed model, shared by `demo`, `generate` and `bench`.
struct SizeOptions: ParsableArguments {
    @Option(help: "Samples per batch (the model's max_batch_size).")
    var batchSize = 256
    @Option(help: "Number of tables.")
    var tables = 8
    @Option(help: "Keys per table; table i holds keys [i·vocab, (i+1)·vocab).")
    var vocab = 10_000
    @Option(help: "Floats per embedding vector.")
    var dim = 128
    @Option(help: "Keys per sample and table.")
    var keysPerSample = 26
    @Option(help: "Vector values: random (seeded, distinct per key) or notebook (0.00025 everywhere).")
    var values: String = "random"
    @Option(help: "Seed of the vectors, inputs and dense weights.")
    var seed: UInt64 = 2023
    @Option(help: "How the tiers store the vectors (vector_storage): fp32, fp16, bf16, int8 or fp8.")
    var storage: String = "fp32"

    /// The model these options describe.
    func model(keyType: KeyType = .int32) throws -> SeedModel {
        var model = SeedModel()
        model.batchSize = batchSize
        model.tables = tables
        model.vocab = vocab
        model.dim = dim
        model.keysPerSample = keysPerSample
        model.keyType = keyType
        model.seed = seed
        guard let values = SeedModel.Values(rawValue: values) else {
            throw ValidationError("--values must be random or notebook, not \(values)")
        }
        model.values = values
        guard let vectorStorage = VectorStorage(rawValue: storage) else {
            throw ValidationError("--storage must be one of \(VectorStorage.allCases.map(\.rawValue).joined(separator: ", ")), not \(storage)")
        }
        model.vectorStorage = vectorStorage
        try model.validate()
        return model
    }
}

/// Parses `--key-type`.
func parseKeyType(_ text: String) throws -> KeyType {
    guard let type = KeyType(rawValue: text) else {
        throw ValidationError("--key-type must be int64 or int32, not \(text)")
    }
    return type
}
