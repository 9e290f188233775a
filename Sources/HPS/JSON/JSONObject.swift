/// The members of a JSON object, in the order they were written or inserted.
///
/// Setting a key that is already present replaces its value in place, so a document with a
/// duplicated key keeps the last value at the position of the first occurrence.
public struct JSONObject: Sendable, Equatable {
    /// The members in order, each key at most once.
    public private(set) var members: [(key: String, value: JSONValue)]
    private var indexByKey: [String: Int]

    /// Creates an object from members in order; for a repeated key the last value wins.
    public init(_ pairs: [(String, JSONValue)] = []) {
        members = []
        indexByKey = [:]
        members.reserveCapacity(pairs.count)
        for (key, value) in pairs { self[key] = value }
    }

    /// The number of members.
    public var count: Int { members.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { members.isEmpty }

    /// The keys in order.
    public var keys: [String] { members.map(\.key) }

    /// The value for `key`; setting `nil` removes the member, setting a value appends it or
    /// replaces the existing one in place.
    public subscript(key: String) -> JSONValue? {
        get { indexByKey[key].map { members[$0].value } }
        set {
            if let index = indexByKey[key] {
                if let newValue {
                    members[index].value = newValue
                } else {
                    members.remove(at: index)
                    indexByKey[key] = nil
                    for position in index..<members.count { indexByKey[members[position].key] = position }
                }
            } else if let newValue {
                indexByKey[key] = members.count
                members.append((key, newValue))
            }
        }
    }

    /// Two objects are equal when they have the same members in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
