/// A JSON document or a value inside one.
///
/// Numbers keep the form they were written in: integral numbers without a fraction or
/// exponent are `integer` (or `unsigned` when they exceed `Int64.max`), everything else is
/// `double`. This keeps values such as an `overflow_margin` of `18446744073709551615` exact.
package enum JSONValue: Sendable, Equatable {
    /// The literal `null`.
    case null
    /// The literals `true` and `false`.
    case bool(Bool)
    /// An integral number that fits in `Int64`.
    case integer(Int64)
    /// An integral number above `Int64.max`, for example `18446744073709551615`.
    case unsigned(UInt64)
    /// A number with a fraction or an exponent, or an integral number too large for `UInt64`.
    case double(Double)
    /// A string, with escapes resolved.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object whose members keep the order they were written in.
    case object(JSONObject)
}

extension JSONValue {
    /// An unsigned integer as `integer` when it fits in `Int64`, as `unsigned` otherwise.
    init(_ value: UInt64) {
        self = value <= UInt64(Int64.max) ? .integer(Int64(value)) : .unsigned(value)
    }

    /// The object's members, or `nil` when the value is not an object.
    package var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The array's elements, or `nil` when the value is not an array.
    package var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The string, or `nil` when the value is not a string.
    package var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// Looks up a member when the value is an object; `nil` otherwise or when the key is absent.
    package subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// Creates `null`.
    package init(nilLiteral: ()) { self = .null }
    /// Creates a boolean.
    package init(booleanLiteral value: Bool) { self = .bool(value) }
    /// Creates an integer.
    package init(integerLiteral value: Int64) { self = .integer(value) }
    /// Creates a double.
    package init(floatLiteral value: Double) { self = .double(value) }
    /// Creates a string.
    package init(stringLiteral value: String) { self = .string(value) }
    /// Creates an array.
    package init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Creates an object whose members keep the literal's order.
    package init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}
