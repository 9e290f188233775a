/// Why a text is not valid JSON, and where.
package struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, for example `expected ',' or '}' after object member`.
    package var reason: String
    /// The 1-based line of the offending character.
    package var line: Int
    /// The 1-based column, counted in Unicode scalars, of the offending character.
    package var column: Int

    /// Creates an error at a position.
    package init(reason: String, line: Int, column: Int) {
        self.reason = reason
        self.line = line
        self.column = column
    }

    /// The reason followed by the position, for example
    /// `expected ',' or '}' after object member at line 3, column 5`.
    package var description: String {
        "\(reason) at line \(line), column \(column)"
    }
}
