/// Why a text is not valid JSON, and where.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for example `expected ',' or '}' after object member`.
    public var reason: String
    /// The 1-based line of the offending character.
    public var line: Int
    /// The 1-based column, counted in Unicode scalars, of the offending character.
    public var column: Int

    /// Creates an error at a position.
    public init(reason: String, line: Int, column: Int) {
        self.reason = reason
        self.line = line
        self.column = column
    }

    /// The reason followed by the position, for example
    /// `expected ',' or '}' after object member at line 3, column 5`.
    public var description: String {
        "\(reason) at line \(line), column \(column)"
    }
}
