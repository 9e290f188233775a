import ArgumentParser
import HPS

/// `hps inspect`: describes a configuration or a sparse model folder.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a configuration or a sparse model folder: tables, key counts, vec sizes, key ranges, overlaps."
    )

    @Argument(help: "An HPS JSON configuration or a sparse model folder.")
    var path: String

    func run() throws {
        try reportingErrors {
            let inspection = try ModelInspection(path: path)
            print(inspection.report(), terminator: "")
        }
    }
}
