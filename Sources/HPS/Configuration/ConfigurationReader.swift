/// Reads typed values out of one JSON object of a configuration, naming every problem by its
/// JSON path, and remembers which keys it was asked about so the rest can be reported as
/// unknown.
struct ConfigurationReader {
    /// The object being read.
    let object: JSONObject
    /// The JSON path of the object: empty for the top level, `models[0]`, `volatile_db`.
    let path: String
    /// Keys the parser asked about, whether present or not.
    private(set) var knownKeys: [String] = []

    init(_ object: JSONObject, path: String) {
        self.object = object
        self.path = path
    }

    /// Reads `value` as an object, or fails with a wrong-type error at `path`.
    init(_ value: JSONValue, path: String) throws(ConfigurationError) {
        guard case .object(let object) = value else {
            throw .wrongType(path: path, expected: "an object", found: Self.describe(value))
        }
        self.init(object, path: path)
    }

    /// The JSON path of a member.
    func path(of key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// The member's value, or `nil` when absent; records the key as known.
    mutating func value(_ key: String) -> JSONValue? {
        if !knownKeys.contains(key) { knownKeys.append(key) }
        return object[key]
    }

    /// The member's value, or a missing-key error.
    mutating func required(_ key: String) throws(ConfigurationError) -> JSONValue {
        guard let value = value(key) else { throw .missingKey(path: path(of: key)) }
        return value
    }

    /// Accepts keys that other tools write and that mean nothing here.
    mutating func ignore(_ keys: String...) {
        for key in keys { _ = value(key) }
    }

    // MARK: Scalars with defaults

    mutating func bool(_ key: String, default defaultValue: Bool) throws(ConfigurationError) -> Bool {
        guard let value = value(key) else { return defaultValue }
        return try Self.bool(value, path: path(of: key))
    }

    mutating func string(_ key: String, default defaultValue: String) throws(ConfigurationError) -> String {
        guard let value = value(key) else { return defaultValue }
        return try Self.string(value, path: path(of: key))
    }

    mutating func int(
        _ key: String, default defaultValue: Int, mustBe requirement: String? = nil,
        where isValid: (Int) -> Bool = { _ in true }
    ) throws(ConfigurationError) -> Int {
        guard let value = value(key) else { return defaultValue }
        return try Self.int(value, path: path(of: key), mustBe: requirement, where: isValid)
    }

    mutating func uint64(
        _ key: String, default defaultValue: UInt64, mustBe requirement: String,
        where isValid: (UInt64) -> Bool
    ) throws(ConfigurationError) -> UInt64 {
        guard let value = value(key) else { return defaultValue }
        let path = path(of: key)
        let result: UInt64
        switch value {
        case .unsigned(let unsigned): result = unsigned
        case .integer(let integer) where integer >= 0: result = UInt64(integer)
        case .double(let double) where double >= 0 && double < 18_446_744_073_709_551_616.0 && double.rounded() == double:
            result = UInt64(double)
        case _ where Self.isIntegral(value):
            // Negative, or too large for 64 bits.
            throw .invalidValue(path: path, expected: requirement, found: value.serialized())
        default:
            throw .wrongType(path: path, expected: "an integer", found: Self.describe(value))
        }
        guard isValid(result) else {
            throw .invalidValue(path: path, expected: requirement, found: value.serialized())
        }
        return result
    }

    mutating func double(
        _ key: String, default defaultValue: Double, mustBe requirement: String? = nil,
        where isValid: (Double) -> Bool = { _ in true }
    ) throws(ConfigurationError) -> Double {
        guard let value = value(key) else { return defaultValue }
        let path = path(of: key)
        let result = try Self.double(value, path: path)
        if let requirement, !isValid(result) {
            throw .invalidValue(path: path, expected: requirement, found: value.serialized())
        }
        return result
    }

    /// A string member matched exactly against the raw values of `T`.
    mutating func choice<T: RawRepresentable & CaseIterable>(
        _ key: String, default defaultValue: T
    ) throws(ConfigurationError) -> T where T.RawValue == String {
        guard let value = value(key) else { return defaultValue }
        let path = path(of: key)
        let string = try Self.string(value, path: path)
        guard let choice = T(rawValue: string) else {
            let names = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw .invalidValue(path: path, expected: "one of \(names)", found: value.serialized())
        }
        return choice
    }

    // MARK: Arrays

    /// The member as an array, each element converted with `element`, which receives the
    /// element's path; `nil` when the member is absent.
    mutating func array<Element>(
        _ key: String,
        _ element: (JSONValue, String) throws(ConfigurationError) -> Element
    ) throws(ConfigurationError) -> [Element]? {
        guard let value = value(key) else { return nil }
        let path = path(of: key)
        guard case .array(let elements) = value else {
            throw .wrongType(path: path, expected: "an array", found: Self.describe(value))
        }
        var result: [Element] = []
        result.reserveCapacity(elements.count)
        for (index, item) in elements.enumerated() {
            result.append(try element(item, "\(path)[\(index)]"))
        }
        return result
    }

    /// A required array member.
    mutating func requiredArray<Element>(
        _ key: String,
        _ element: (JSONValue, String) throws(ConfigurationError) -> Element
    ) throws(ConfigurationError) -> [Element] {
        guard let result = try array(key, element) else { throw .missingKey(path: path(of: key)) }
        return result
    }

    // MARK: Warnings

    /// One warning per member whose key the parser never asked about, with a suggestion when a
    /// known key is at most two edits away.
    func unknownKeyWarnings() -> [String] {
        object.keys.filter { !knownKeys.contains($0) }.map { key in
            var warning = "unknown key \(path(of: key)) is ignored"
            let suggestion = knownKeys
                .map { (key: $0, distance: Self.editDistance(key, $0)) }
                .filter { $0.distance <= 2 }
                .min { $0.distance < $1.distance }
            if let suggestion { warning += "; did you mean \(suggestion.key)?" }
            return warning
        }
    }

    /// The Levenshtein distance between two strings, counted in characters.
    static func editDistance(_ lhs: String, _ rhs: String) -> Int {
        let a = Array(lhs)
        let b = Array(rhs)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    // MARK: Conversions

    static func bool(_ value: JSONValue, path: String) throws(ConfigurationError) -> Bool {
        guard case .bool(let bool) = value else {
            throw .wrongType(path: path, expected: "a boolean", found: describe(value))
        }
        return bool
    }

    static func string(_ value: JSONValue, path: String) throws(ConfigurationError) -> String {
        guard case .string(let string) = value else {
            throw .wrongType(path: path, expected: "a string", found: describe(value))
        }
        return string
    }

    /// An integer; integral doubles such as `256.0` are accepted, `2.5` is not.
    static func int(
        _ value: JSONValue, path: String, mustBe requirement: String? = nil,
        where isValid: (Int) -> Bool = { _ in true }
    ) throws(ConfigurationError) -> Int {
        let result: Int
        switch value {
        case .integer(let integer): result = Int(integer)
        case .double(let double) where isIntegral(value):
            guard let exact = Int(exactly: double) else {
                throw .invalidValue(path: path, expected: requirement ?? "a smaller integer", found: value.serialized())
            }
            result = exact
        case .unsigned:
            throw .invalidValue(path: path, expected: requirement ?? "a smaller integer", found: value.serialized())
        default:
            throw .wrongType(path: path, expected: "an integer", found: describe(value))
        }
        if let requirement, !isValid(result) {
            throw .invalidValue(path: path, expected: requirement, found: value.serialized())
        }
        return result
    }

    /// A number; integers are accepted.
    static func double(_ value: JSONValue, path: String) throws(ConfigurationError) -> Double {
        switch value {
        case .integer(let integer): Double(integer)
        case .unsigned(let unsigned): Double(unsigned)
        case .double(let double): double
        default: throw .wrongType(path: path, expected: "a number", found: describe(value))
        }
    }

    private static func isIntegral(_ value: JSONValue) -> Bool {
        switch value {
        case .integer, .unsigned: true
        case .double(let double): double.isFinite && double.rounded() == double
        default: false
        }
    }

    /// Names a value's type and shows it, for example `the string "256"` or `an array`.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let bool): "the boolean \(bool)"
        case .integer, .unsigned, .double: "the number \(value.serialized())"
        case .string: "the string \(value.serialized())"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
