import ArgumentParser

/// `hps`: the command line of swift-hps.
@main
struct HPSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hps",
        abstract: "A hierarchical parameter server for embedding lookups, compatible with HugeCTR HPS.",
        subcommands: [DemoCommand.self, GenerateCommand.self, LookupCommand.self, InspectCommand.self, BenchCommand.self, ServeCommand.self, SelfTestCommand.self]
    )
}
