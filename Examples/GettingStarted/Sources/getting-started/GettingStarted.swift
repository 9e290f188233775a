import HPS

/// Looks up keys of the first table of a configuration's first model, as
/// the getting-started article shows.
@main
struct GettingStarted {
    static func main() async throws {
        guard CommandLine.arguments.count == 2 else {
            print("usage: getting-started CONFIGURATION.json")
            return
        }
        // Build the tiers and load every model's tables (off the cooperative pool).
        let server = try await HierarchicalParameterServer.open(configurationFile: CommandLine.arguments[1])
        guard let model = server.models.first else { return }
        let session = try server.session(model: model.name)

        // Keys of table 0; a key no tier holds gets the table's default vector.
        let keys: [Int64] = [0, 1, 2, 2_000_000_000]
        do {
            let vectors = try session.lookup(table: 0, keys: keys)
            let width = model.vecSizes[0]
            for (i, key) in keys.enumerated() {
                print("\(model.tableNames[0])[\(key)]: \(vectors[i * width..<i * width + min(width, 4)].map { $0 })")
            }
        } catch {
            // A LookupError names what to fix: an unknown table, too many keys for max_batch_size, …
            print("lookup failed: \(error)")
        }
    }
}
