/// The members of a JSON object, in the order they were written or inserted.
///
/// Setting a key that is already present replaces its value in place, so a document with a
/// duplicated key keeps the last value at the position of the first occurrence.
package struct JSONObject: Sendable, Equatable {
    /// The members in order, each key at most once.
    package private(set) var members: [(key: String, value: JSONValue)]
    /// Each key's position in `members`, kept only for objects of more than
    /// `scannedMembers` members: for the small objects of a request header a
    /// scan of the keys costs less than hashing one and allocating the index.
    private var indexByKey: [String: Int]?

    /// The most members an object finds its keys in by a scan.
    static let scannedMembers = 8

    /// Creates an object from members in order; for a repeated key the last value wins.
    package init(_ pairs: [(String, JSONValue)] = []) {
        members = []
        members.reserveCapacity(pairs.count)
        for (key, value) in pairs { self[key] = value }
    }

    /// The number of members.
    package var count: Int { members.count }

    /// Whether the object has no members.
    package var isEmpty: Bool { members.isEmpty }

    /// The keys in order.
    package var keys: [String] { members.map(\.key) }

    private func position(of key: String) -> Int? {
        if let indexByKey { return indexByKey[key] }
        return members.firstIndex { $0.key == key }
    }

    /// The value for `key`; setting `nil` removes the member, setting a value appends it or
    /// replaces the existing one in place.
    package subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let index = position(of: key) {
                if let newValue {
                    members[index].value = newValue
                } else {
                    members.remove(at: index)
                    if indexByKey != nil {
                        indexByKey![key] = nil
                        for position in index..<members.count { indexByKey![members[position].key] = position }
                    }
                }
            } else if let newValue {
                members.append((key, newValue))
                if indexByKey != nil {
                    indexByKey![key] = members.count - 1
                } else if members.count > Self.scannedMembers {
                    indexByKey = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1.key, $0) })
                }
            }
        }
    }

    /// Two objects are equal when they have the same members in the same order.
    package static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
