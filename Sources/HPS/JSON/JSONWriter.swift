extension JSONValue {
    /// The value as JSON text.
    ///
    /// Compact output has no whitespace. Pretty output matches Python's
    /// `json.dumps(value, indent=4, ensure_ascii=False)`: one member or element per line, four
    /// spaces per level, `": "` after keys. Doubles use the shortest text that reads back as
    /// the same value and always show a fraction or exponent (`1.0`, `1e-05`); infinities and
    /// NaN, which JSON cannot express, are written as `null`. Non-ASCII characters are written
    /// as they are; quotes, backslashes and control characters are escaped.
    ///
    /// Runs in time linear in the output size.
    package func serialized(pretty: Bool = false) -> String {
        var writer = JSONWriter(pretty: pretty)
        writer.write(self, indentation: 0)
        return writer.output
    }
}

/// Appends the JSON text of values to one growing string.
///
/// The output is a `String` rather than bytes because appending strings and formatting
/// numbers straight into it (`write(to:)`) runs in the optimized standard library, which
/// keeps even unoptimized builds fast.
struct JSONWriter {
    private(set) var output = ""
    private let pretty: Bool

    init(pretty: Bool) {
        self.pretty = pretty
        output.reserveCapacity(1024)
    }

    mutating func write(_ value: JSONValue, indentation: Int) {
        switch value {
        case .null: output += "null"
        case .bool(let bool): output += bool ? "true" : "false"
        case .integer(let integer): output += String(integer)
        case .unsigned(let unsigned): output += String(unsigned)
        case .double(let double):
            // `write(to:)` is the shortest text that parses back to the same Double and keeps a
            // fraction or exponent on integral values ("1.0", "1e+16"), so it stays a double.
            if double.isFinite { double.write(to: &output) } else { output += "null" }
        case .string(let string): writeString(string)
        case .array(let elements):
            guard !elements.isEmpty else {
                output += "[]"
                return
            }
            output += "["
            for index in elements.indices {
                if index > 0 { output.append(",") }
                newline(indentation: indentation + 1)
                // Numbers are written inline: embedding vectors are long arrays of them.
                if case .double(let double) = elements[index], double.isFinite {
                    double.write(to: &output)
                } else {
                    write(elements[index], indentation: indentation + 1)
                }
            }
            newline(indentation: indentation)
            output += "]"
        case .object(let object):
            guard !object.isEmpty else {
                output += "{}"
                return
            }
            output += "{"
            var isFirst = true
            for member in object.members {
                if !isFirst { output += "," }
                isFirst = false
                newline(indentation: indentation + 1)
                writeString(member.key)
                output += pretty ? ": " : ":"
                write(member.value, indentation: indentation + 1)
            }
            newline(indentation: indentation)
            output += "}"
        }
    }

    @inline(__always)
    private mutating func newline(indentation: Int) {
        guard pretty else { return }
        output += "\n"
        output += String(repeating: " ", count: 4 * indentation)
    }

    private mutating func writeString(_ string: String) {
        output += "\""
        let needsEscaping = string.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        guard needsEscaping else {
            output += string
            output += "\""
            return
        }
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                output += hex.count == 1 ? "\\u000" + hex : "\\u00" + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}
