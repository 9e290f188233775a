import Testing

@testable import HPS

struct JSONTests {
    /// The parse error for `text`, or `nil` when it parses.
    private func syntaxError(_ text: String) -> JSONSyntaxError? {
        do {
            _ = try JSONValue.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test("scalars parse to the matching cases")
    func scalars() throws {
        #expect(try JSONValue.parse("null") == .null)
        #expect(try JSONValue.parse("true") == .bool(true))
        #expect(try JSONValue.parse(" false ") == .bool(false))
        #expect(try JSONValue.parse("42") == .integer(42))
        #expect(try JSONValue.parse("-7") == .integer(-7))
        #expect(try JSONValue.parse("-0") == .integer(0))
        #expect(try JSONValue.parse("1.5") == .double(1.5))
        #expect(try JSONValue.parse("1e3") == .double(1000))
        #expect(try JSONValue.parse("2.5E-1") == .double(0.25))
        #expect(try JSONValue.parse("\"hi\"") == .string("hi"))
    }

    @Test("integers beyond Int64.max become unsigned, beyond UInt64.max double")
    func bigIntegers() throws {
        #expect(try JSONValue.parse("9223372036854775807") == .integer(.max))
        #expect(try JSONValue.parse("-9223372036854775808") == .integer(.min))
        #expect(try JSONValue.parse("9223372036854775808") == .unsigned(9_223_372_036_854_775_808))
        #expect(try JSONValue.parse("18446744073709551615") == .unsigned(.max))
        #expect(try JSONValue.parse("18446744073709551616") == .double(18_446_744_073_709_551_616))
        #expect(try JSONValue.parse("-9223372036854775809") == .double(-9_223_372_036_854_775_808.0))
    }

    @Test("every simple escape is resolved")
    func simpleEscapes() throws {
        #expect(try JSONValue.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
    }

    @Test("\\u escapes decode, including surrogate pairs")
    func unicodeEscapes() throws {
        #expect(try JSONValue.parse(#""caf\u00e9 \u00E9""#) == .string("café é"))
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue.parse(#""a\u0000b""#) == .string("a\u{0}b"))
    }

    @Test("raw non-ASCII text passes through unchanged")
    func rawUnicode() throws {
        #expect(try JSONValue.parse("\"Grüße 😀 表\"") == .string("Grüße 😀 表"))
    }

    @Test("an unpaired surrogate is an error at the escape")
    func unpairedSurrogate() {
        #expect(syntaxError(#""ab\ud83d""#)?.description == #"unpaired high surrogate \uD83D in string at line 1, column 4"#)
        #expect(syntaxError(#""\ude00""#)?.description == #"unpaired low surrogate \uDE00 in string at line 1, column 2"#)
        #expect(syntaxError(#""\ud83dx""#) != nil)
    }

    @Test("invalid escapes and raw control characters are rejected")
    func invalidStrings() {
        #expect(syntaxError(#""a\qb""#)?.description == #"invalid escape '\q' in string at line 1, column 3"#)
        #expect(syntaxError(#""\u12G4""#)?.reason == #"invalid \u escape in string: expected four hexadecimal digits"#)
        #expect(syntaxError("\"a\nb\"")?.description == "unescaped control character U+000A in string at line 1, column 3")
        #expect(syntaxError("\"abc")?.reason == "unterminated string")
    }

    @Test("numbers outside the RFC 8259 grammar are rejected")
    func invalidNumbers() {
        for text in ["01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-.5"] {
            #expect(syntaxError(text) != nil, "\(text) should be rejected")
        }
        #expect(syntaxError("01")?.reason == "numbers must not have leading zeros")
        #expect(syntaxError("1e400")?.reason == "number 1e400 is out of range")
    }

    @Test("nesting up to 512 levels parses and deeper nesting is rejected")
    func nestingLimit() throws {
        let deepest = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try JSONValue.parse(deepest) != .null)
        let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        #expect(syntaxError(tooDeep)?.description == "arrays and objects are nested deeper than 512 levels at line 1, column 513")
    }

    @Test("text after the value is an error")
    func trailingGarbage() {
        #expect(syntaxError("{} x")?.description == "unexpected 'x' after the JSON value at line 1, column 4")
        #expect(syntaxError("[1]]")?.description == "unexpected ']' after the JSON value at line 1, column 4")
        #expect(syntaxError("1 2") != nil)
    }

    @Test("errors name the line and column of the offending character")
    func errorPosition() {
        let text = "{\n    \"a\": 1\n    \"b\": 2\n}"
        #expect(syntaxError(text)?.description == "expected ',' or '}' after object member but found '\"' at line 3, column 5")
        #expect(syntaxError("[1, 2,]")?.description == "expected a value but found ']' at line 1, column 7")
        #expect(syntaxError("{\"a\" 1}")?.description == "expected ':' after object key but found '1' at line 1, column 6")
        #expect(syntaxError("{1: 2}")?.description == "expected a string key but found '1' at line 1, column 2")
        #expect(syntaxError("[1 2]")?.description == "expected ',' or ']' after array element but found '2' at line 1, column 4")
        #expect(syntaxError("")?.description == "expected a value but found the end of input at line 1, column 1")
        #expect(syntaxError("[tru]")?.description == "invalid literal, expected true at line 1, column 2")
    }

    @Test("columns count characters, not bytes")
    func columnsCountCharacters() {
        #expect(syntaxError("[\"é😀\" x]")?.column == 7)
    }

    @Test("object members keep their order and a repeated key keeps the last value")
    func objectOrderAndDuplicates() throws {
        let value = try JSONValue.parse(#"{"b": 1, "a": 2, "b": 3}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["b", "a"])
        #expect(object["b"] == .integer(3))
        #expect(value["a"] == .integer(2))
        #expect(value["missing"] == nil)
    }

    @Test("objects small and large find, replace and remove members by key, keeping their order",
          arguments: [3, JSONObject.scannedMembers, JSONObject.scannedMembers + 1, 40])
    func objectMembersByKey(size: Int) {
        var object = JSONObject((0..<size).map { ("k\($0)", .integer(Int64($0))) })
        #expect(object.keys == (0..<size).map { "k\($0)" })
        for i in 0..<size { #expect(object["k\(i)"] == .integer(Int64(i))) }
        #expect(object["k\(size)"] == nil)
        object["k1"] = .string("replaced")
        object["k0"] = nil
        object["new"] = .bool(true)
        var expected = (1..<size).map { "k\($0)" }
        expected.append("new")
        #expect(object.keys == expected)
        #expect(object["k1"] == .string("replaced"))
        #expect(object["k0"] == nil)
        #expect(object["new"] == .bool(true))
        for i in 2..<size { #expect(object["k\(i)"] == .integer(Int64(i))) }
        // A repeated key in the members given keeps the last value at the first position.
        let repeated = JSONObject((0..<size).map { ("k\($0)", .integer(Int64($0))) } + [("k0", .integer(-1))])
        #expect(repeated.keys == (0..<size).map { "k\($0)" })
        #expect(repeated["k0"] == .integer(-1))
    }

    @Test("compact serialization has no whitespace and escapes what it must")
    func compactSerialization() {
        let value: JSONValue = ["s": "q\"b\\n\n\u{01}/é", "a": [1, 2.5, true, nil], "o": [:], "e": []]
        #expect(value.serialized() == #"{"s":"q\"b\\n\n\u0001/é","a":[1,2.5,true,null],"o":{},"e":[]}"#)
    }

    @Test("doubles are written so they read back as the same value")
    func doubleSerialization() throws {
        #expect(JSONValue.double(1).serialized() == "1.0")
        #expect(JSONValue.double(0.1).serialized() == "0.1")
        #expect(JSONValue.double(-0.0).serialized() == "-0.0")
        #expect(JSONValue.unsigned(.max).serialized() == "18446744073709551615")
        for double in [0.1, 1.0 / 3.0, 1e-7, 1e300, .leastNonzeroMagnitude, Double(Float(0.1)), 123_456_789.125] {
            #expect(try JSONValue.parse(JSONValue.double(double).serialized()) == .double(double))
        }
    }

    @Test("non-finite doubles are written as null")
    func nonFiniteSerialization() {
        #expect(JSONValue.double(.infinity).serialized() == "null")
        #expect(JSONValue.double(-.infinity).serialized() == "null")
        #expect(JSONValue.double(.nan).serialized() == "null")
    }

    @Test("pretty output matches Python's json.dumps with indent=4")
    func prettyMatchesPython() throws {
        let value = try JSONValue.parse(Fixtures.notebook)
        #expect(value.serialized(pretty: true) == Fixtures.notebook)
        let small: JSONValue = ["a": [], "b": [:], "c": ["x": 1]]
        #expect(small.serialized(pretty: true) == "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": {\n        \"x\": 1\n    }\n}")
    }

    @Test("serialized text parses back to an equal value")
    func roundTrip() throws {
        let value: JSONValue = [
            "text": "tab\there \u{7F} \u{1F} 😀", "numbers": [0, -1, .unsigned(.max), 1.25, 1e-20],
            "nested": ["deep": [[[]], [:]], "flag": false, "nothing": nil],
        ]
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(try JSONValue.parse(value.serialized(pretty: true)) == value)
    }

    @Test("writing JSON takes time linear in its size (10,000 arrays of 128 floats)")
    func serializationSpeed() throws {
        // A ratio of two sizes in one run, so that a loaded or slow machine
        // (a debug build, CI) does not fail it: linear is 10×, quadratic 100×.
        let row = JSONValue.array((0..<128).map { .double(Double(Float($0) * 0.00025)) })
        let small = JSONValue.array(Array(repeating: row, count: 1_000))
        let large = JSONValue.array(Array(repeating: row, count: 10_000))
        let clock = ContinuousClock()
        var text = ""
        let smallTimes = (0..<3).map { _ in clock.measure { text = small.serialized() } }
        let smallElapsed = smallTimes.sorted()[1]
        let elapsed = clock.measure { text = large.serialized() }
        #expect(text.utf8.count > 1_280_000)
        #expect(elapsed < smallElapsed * 30, "1,000 arrays took \(smallElapsed), 10,000 took \(elapsed)")
    }
}
