import ArgumentParser
import HPS
import HPSDemo

/// `hps generate`: writes the seed model's tables and configuration.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write the seed model's tables in HugeCTR format and DIR/hps.json like the notebook's."
    )

    @Option(help: "The folder to write.")
    var output: String
    @OptionGroup var sizes: SizeOptions
    @Option(help: "Key type of the deployment: int32 (supportlonglong false, as the notebook) or int64.")
    var keyType: String = "int32"

    func run() throws {
        try reportingErrors {
            let model = try sizes.model(keyType: parseKeyType(keyType))
            let path = try model.write(to: output)
            print("wrote \(model.tables) tables of \(model.vocab) keys × \(model.dim) floats under \(output)/embeddings and \(path)")
        }
    }
}
