import ArgumentParser
import HPS
import HPSCUDA

/// `hps lookup`: answers one lookup from a configuration.
struct LookupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup",
        abstract: "Look up keys of one table of a model deployed by a HugeCTR HPS configuration."
    )

    @Option(help: "The HPS JSON configuration.")
    var config: String
    @Option(help: "The model's name.")
    var model: String
    @Option(help: "The table's name or index.")
    var table: String
    // Unconditional: a negative key (HugeCTR tables hold them) is read as a key, not as a flag.
    @Option(parsing: .unconditional, help: "Comma-separated keys, e.g. 1,2,3 or -1,5.")
    var keys: String
    @Flag(help: "Print one JSON object with `vectors`, one array per key.")
    var json = false
    @Flag(help: "Also print which tier answered how many keys, in all and per table.")
    var stats = false
    @Option(help: "Where to look up: cpu, gpu or auto (the GPU when one loads).")
    var device: String = "cpu"
    @Option(help: "The GPU's ordinal, with --device gpu (default: the model's first deployed device).")
    var gpu: Int?

    func run() throws {
        try reportingErrors {
            let keys = try Self.parseKeys(self.keys)
            let configuration = try HPSConfiguration.load(path: config)
            let modelDevices = configuration.model(named: model)?.effectiveDevices ?? [0]
            let target = try Device.resolve(device, index: gpu ?? modelDevices.first ?? 0)
            // On a GPU, the model's groups get their GPU tables or caches as the L1 of the same tiers.
            let server = try HierarchicalParameterServer(configuration: configuration, backends: Backends.all,
                                                         gpu: target == .cpu ? nil : GPUCacheFactory())
            for warning in server.warnings { note("hps: warning: \(warning)") }
            var session = try server.session(model: model)
            if case .gpu(let index) = target {
                do {
                    session = try server.session(model: model, device: index)
                } catch {
                    // auto stays on the CPU session for a model not served from that GPU; gpu says why not.
                    guard device == "auto" else { throw error }
                    note("hps: running on the CPU because \(error)")
                }
            }
            let table = try session.tableIndex(self.table)
            let vecSize = session.model.vecSizes[table]
            let vectors = try session.lookup(table: table, keys: keys)
            let counts = session.statistics.totals
            // This command runs no background work to log them as they come.
            for fault in server.logTierFaults() { note("hps: error: \(fault)") }
            if json {
                var fields: [(String, JSONValue)] = [
                    ("model", .string(model)),
                    ("table", .string(session.model.tableNames[table])),
                    ("keys", .array(keys.map { .integer($0) })),
                    ("vectors", .array((0..<keys.count).map { i in
                        .array(vectors[(i * vecSize)..<((i + 1) * vecSize)].map { .double(Double($0)) })
                    })),
                ]
                if stats {
                    let tiers = session.tierNames
                    func object(keys: Int, tierHits: [Int], defaults: Int) -> [(String, JSONValue)] {
                        var fields: [(String, JSONValue)] = [("keys", .integer(Int64(keys)))]
                        for (tier, hits) in zip(tiers, tierHits) { fields.append(("\(tier)_hits", .integer(Int64(hits)))) }
                        fields.append(("defaults", .integer(Int64(defaults))))
                        return fields
                    }
                    var statFields = object(keys: counts.keys, tierHits: counts.tierHits, defaults: counts.defaults)
                    let perTable = zip(session.model.tableNames, counts.tables).filter { $0.1.keys > 0 }.map { name, table in
                        (name, JSONValue.object(JSONObject(object(keys: table.keys, tierHits: table.tierHits, defaults: table.defaults))))
                    }
                    statFields.append(("tables", .object(JSONObject(perTable))))
                    fields.append(("stats", .object(JSONObject(statFields))))
                }
                print(JSONValue.object(JSONObject(fields)).serialized())
            } else {
                for (i, key) in keys.enumerated() {
                    let row = vectors[(i * vecSize)..<((i + 1) * vecSize)].map { String($0) }.joined(separator: " ")
                    print("\(key): \(row)")
                }
                if stats {
                    let names = session.tierNames
                    func line(_ keys: Int, _ tierHits: [Int], _ defaults: Int) -> String {
                        let tiers = zip(names, tierHits).map { "\($0) \($1)" }.joined(separator: ", ")
                        return "keys \(keys); answered by \(tiers); default value \(defaults)"
                    }
                    print(line(counts.keys, counts.tierHits, counts.defaults))
                    for (name, table) in zip(session.model.tableNames, counts.tables) where table.keys > 0 {
                        print("table \(name): \(line(table.keys, table.tierHits, table.defaults))")
                    }
                }
            }
        }
    }

    /// Parses `1,2,3`.
    static func parseKeys(_ text: String) throws -> [Int64] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        return try parts.map { part in
            let trimmed = part.trimmingCharacters(in: " ")
            guard let key = Int64(trimmed) else {
                throw ValidationError("--keys must be comma-separated integers, but \"\(trimmed)\" is not one")
            }
            return key
        }
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
