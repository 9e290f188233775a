import ArgumentParser
import Glibc

/// `hps`: the command line of swift-hps.
@main
struct HPSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hps",
        abstract: "A hierarchical parameter server for embedding lookups, compatible with HugeCTR HPS.",
        subcommands: commands
    )

    static func main() async {
        // Past a file size limit (ulimit -f) a write fails with EFBIG, which
        // the store reports, instead of ending the process.
        signal(SIGXFSZ, SIG_IGN)
        await main(nil)
    }
}

/// The subcommands of this build (`serve` with the Serving trait, on by default).
private var commands: [any ParsableCommand.Type] {
    var list: [any ParsableCommand.Type] = [DemoCommand.self, GenerateCommand.self, LookupCommand.self, InspectCommand.self,
                                            BenchCommand.self, BenchProbeCommand.self]
    #if Serving
    list.append(ServeCommand.self)
    #endif
    list.append(PublishCommand.self)
    list.append(SelfTestCommand.self)
    return list
}
