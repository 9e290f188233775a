extension JSONValue {
    /// The deepest nesting of arrays and objects that `parse(_:)` accepts.
    package static let maximumNestingDepth = 512

    /// Parses a complete JSON text (RFC 8259): one value, optionally surrounded by whitespace.
    ///
    /// Integral numbers become `integer`, or `unsigned` above `Int64.max`; numbers with a
    /// fraction or exponent become `double`. For a key repeated in one object the last value
    /// wins. Nesting deeper than `maximumNestingDepth` is rejected.
    ///
    /// - Throws: `JSONSyntaxError` with the line and column of the first offending character.
    package static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        var text = text
        // `withUTF8` rethrows untyped errors, so the typed error travels inside a `Result`.
        let result = text.withUTF8 { bytes in
            Result { () throws(JSONSyntaxError) -> JSONValue in
                var parser = JSONParser(bytes: bytes)
                return try parser.parseDocument()
            }
        }
        return try result.get()
    }
}

/// A recursive-descent parser over the UTF-8 bytes of a JSON text.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        if position < bytes.count {
            throw error("unexpected \(describeCurrent()) after the JSON value")
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue() throws(JSONSyntaxError) -> JSONValue {
        guard position < bytes.count else {
            throw error("expected a value but found the end of input")
        }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("expected a value but found \(describeCurrent())")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let start = position
        let count = literal.utf8CodeUnitCount
        let literalBytes = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count {
            guard start + offset < bytes.count, bytes[start + offset] == literalBytes[offset] else {
                throw error(at: start, "invalid literal, expected \(literal)")
            }
        }
        position = start + count
    }

    private mutating func enterContainer() throws(JSONSyntaxError) {
        depth += 1
        if depth > JSONValue.maximumNestingDepth {
            throw error("arrays and objects are nested deeper than \(JSONValue.maximumNestingDepth) levels")
        }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONValue {
        try enterContainer()
        position += 1  // '{'
        var object = JSONObject()
        skipWhitespace()
        if consume(UInt8(ascii: "}")) {
            depth -= 1
            return .object(object)
        }
        while true {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a string key but found \(describeCurrent())")
            }
            let key = try parseString()
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else {
                throw error("expected ':' after object key but found \(describeCurrent())")
            }
            skipWhitespace()
            object[key] = try parseValue()
            skipWhitespace()
            if consume(UInt8(ascii: ",")) {
                skipWhitespace()
                continue
            }
            if consume(UInt8(ascii: "}")) { break }
            throw error("expected ',' or '}' after object member but found \(describeCurrent())")
        }
        depth -= 1
        return .object(object)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        try enterContainer()
        position += 1  // '['
        var elements: [JSONValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) {
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue())
            skipWhitespace()
            if consume(UInt8(ascii: ",")) {
                skipWhitespace()
                continue
            }
            if consume(UInt8(ascii: "]")) { break }
            throw error("expected ',' or ']' after array element but found \(describeCurrent())")
        }
        depth -= 1
        return .array(elements)
    }

    // MARK: Strings

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes, the bytes are copied as they are.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let string = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                position += 1
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw controlCharacterError(byte) }
            position += 1
        }
        var buffer = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &buffer)
            case 0..<0x20:
                throw controlCharacterError(byte)
            default:
                buffer.append(byte)
                position += 1
            }
        }
        throw error("unterminated string")
    }

    private func controlCharacterError(_ byte: UInt8) -> JSONSyntaxError {
        error("unescaped control character \(hexScalar(UInt32(byte))) in string")
    }

    private mutating func parseEscape(into buffer: inout [UInt8]) throws(JSONSyntaxError) {
        position += 1  // backslash
        guard position < bytes.count else { throw error("unterminated string") }
        let byte = bytes[position]
        let simple: UInt8?
        switch byte {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default:
            throw error(at: position - 1, "invalid escape '\\\(describeByte(byte))' in string")
        }
        if let simple {
            buffer.append(simple)
            position += 1
            return
        }
        let escapeStart = position - 1
        position += 1
        var scalar = try parseHexQuad(escapeStart: escapeStart)
        if (0xDC00...0xDFFF).contains(scalar) {
            throw error(at: escapeStart, "unpaired low surrogate \(hexEscape(scalar)) in string")
        }
        if (0xD800...0xDBFF).contains(scalar) {
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                bytes[position + 1] == UInt8(ascii: "u")
            else {
                throw error(at: escapeStart, "unpaired high surrogate \(hexEscape(scalar)) in string")
            }
            let lowStart = position
            position += 2
            let low = try parseHexQuad(escapeStart: lowStart)
            guard (0xDC00...0xDFFF).contains(low) else {
                throw error(at: escapeStart, "unpaired high surrogate \(hexEscape(scalar)) in string")
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        // Every value left here is a valid scalar: surrogates were combined or rejected above.
        let unicodeScalar = Unicode.Scalar(scalar) ?? "\u{FFFD}"
        if let encoded = UTF8.encode(unicodeScalar) { buffer.append(contentsOf: encoded) }
    }

    private mutating func parseHexQuad(escapeStart: Int) throws(JSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard position < bytes.count, let digit = hexDigitValue(bytes[position]) else {
                throw error(at: escapeStart, "invalid \\u escape in string: expected four hexadecimal digits")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = position
        let isNegative = consume(UInt8(ascii: "-"))
        guard position < bytes.count, isDigit(bytes[position]) else {
            throw error("expected a digit in number but found \(describeCurrent())")
        }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
            if position < bytes.count, isDigit(bytes[position]) {
                throw error("numbers must not have leading zeros")
            }
        } else {
            skipDigits()
        }
        var isIntegral = true
        if consume(UInt8(ascii: ".")) {
            isIntegral = false
            guard position < bytes.count, isDigit(bytes[position]) else {
                throw error("expected a digit after the decimal point but found \(describeCurrent())")
            }
            skipDigits()
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isIntegral = false
            position += 1
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            guard position < bytes.count, isDigit(bytes[position]) else {
                throw error("expected a digit in the exponent but found \(describeCurrent())")
            }
            skipDigits()
        }
        let digits = UnsafeBufferPointer(rebasing: bytes[start..<position])
        if isIntegral {
            if let value = integerValue(digits, isNegative: isNegative) { return value }
        }
        let text = String(decoding: digits, as: UTF8.self)
        guard let double = Double(text), double.isFinite else {
            throw error(at: start, "number \(text) is out of range")
        }
        return .double(double)
    }

    /// The exact integer, or `nil` when it fits neither `Int64` nor `UInt64`.
    private func integerValue(_ digits: UnsafeBufferPointer<UInt8>, isNegative: Bool) -> JSONValue? {
        var magnitude: UInt64 = 0
        for byte in digits where byte != UInt8(ascii: "-") {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            magnitude = sum
        }
        if isNegative {
            if magnitude <= UInt64(Int64.max) { return .integer(-Int64(magnitude)) }
            if magnitude == UInt64(Int64.max) + 1 { return .integer(Int64.min) }
            return nil
        }
        if magnitude <= UInt64(Int64.max) { return .integer(Int64(magnitude)) }
        return .unsigned(magnitude)
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }

    // MARK: Scanning

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    // MARK: Errors

    /// An error at the current position, with line and column counted in Unicode scalars.
    private func error(_ reason: String) -> JSONSyntaxError {
        error(at: position, reason)
    }

    /// An error at byte `offset`, with line and column counted in Unicode scalars.
    private func error(at offset: Int, _ reason: String) -> JSONSyntaxError {
        var line = 1
        var column = 1
        for index in 0..<min(offset, bytes.count) {
            let byte = bytes[index]
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return JSONSyntaxError(reason: reason, line: line, column: column)
    }

    private func describeCurrent() -> String {
        describe(at: position)
    }

    private func describe(at offset: Int) -> String {
        guard offset < bytes.count else { return "the end of input" }
        let byte = bytes[offset]
        if byte >= 0x80 {
            // Decode the whole scalar so the message shows the character, not a byte.
            var iterator = UnsafeBufferPointer(rebasing: bytes[offset...]).makeIterator()
            var decoder = UTF8()
            if case .scalarValue(let scalar) = decoder.decode(&iterator) {
                return "'\(Character(scalar))'"
            }
        }
        return "'\(describeByte(byte))'"
    }

    private func describeByte(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7F { return String(UnicodeScalar(byte)) }
        return hexScalar(UInt32(byte))
    }

    private func hexScalar(_ value: UInt32) -> String {
        "U+" + hex4(value)
    }

    private func hexEscape(_ value: UInt32) -> String {
        "\\u" + hex4(value)
    }

    private func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
