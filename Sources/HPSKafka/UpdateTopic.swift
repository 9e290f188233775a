/// The Kafka topic of one table's updates, `hps_et.<model>.<table>`
/// (HugeCTR's `make_tag_name`), and the subscriptions of HugeCTR's consumers.
public struct UpdateTopic: Sendable, Hashable, CustomStringConvertible {
    /// The prefix of every update topic.
    public static let prefix = "hps_et"

    /// The model's name.
    public var model: String
    /// The table's name (`embedding_table_names`).
    public var table: String

    /// The topic of `model`'s table `table`.
    public init(model: String, table: String) {
        self.model = model
        self.table = table
    }

    /// Reads a topic name; nil unless it is `hps_et.<model>.<table>` with both
    /// names of `[a-zA-Z0-9_-]{1,120}`.
    public init?(_ name: String) {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == Self.prefix,
              Self.isValidName(parts[1]), Self.isValidName(parts[2]) else { return nil }
        model = String(parts[1])
        table = String(parts[2])
    }

    /// The topic's name.
    public var description: String { "\(Self.prefix).\(model).\(table)" }

    /// Whether `name` may be part of a topic: 1 to 120 of `[a-zA-Z0-9_-]`.
    public static func isValidName<S: StringProtocol>(_ name: S) -> Bool {
        (1...120).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2D
        }
    }

    /// The regular expressions a consumer subscribes to for a store's
    /// `update_filters`: `^hps_et\.F\..+$` for each filter F, as HugeCTR
    /// wraps them. HugeCTR's default filter, `^hps_.+$`, wrapped so, matches
    /// no topic; where the filters are that default, every model of
    /// `models` is followed instead (`^hps_et\.<model>\..+$`), and the
    /// result says so in `warnings`.
    public static func subscriptions(filters: [String], models: [String]) -> (patterns: [String], warnings: [String]) {
        if filters == [defaultFilter] {
            let patterns = models.map { "^\(prefix)\\.\(escaped($0))\\..+$" }
            return (patterns, ["update_filters is HugeCTR's default [\"\(defaultFilter)\"], which once wrapped as ^hps_et\\.F\\..+$ matches no topic; following every model of the configuration (\(models.joined(separator: ", "))) instead"])
        }
        var warnings: [String] = []
        let patterns = filters.map { filter in
            if filter.hasPrefix("^") || filter.hasSuffix("$") {
                warnings.append("update filter \"\(filter)\" is wrapped as ^hps_et\\.\(filter)\\..+$, where its anchors (^ or $) match no topic; give the model name pattern without anchors")
            }
            return "^\(prefix)\\.\(filter)\\..+$"
        }
        return (patterns, warnings)
    }

    /// HugeCTR's default `update_filters` entry.
    public static let defaultFilter = "^hps_.+$"

    /// `name` with the characters a regular expression treats specially escaped.
    static func escaped(_ name: String) -> String {
        var out = ""
        for character in name {
            if "\\^$.|?*+()[]{}-".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
