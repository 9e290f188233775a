/// A failure of the tools built on the library (`hps demo`, `hps bench`,
/// `hps selftest`): an option out of range, or a check of a result that did
/// not hold; one sentence that says what went wrong. The library itself
/// throws its modules' structured errors, never this.
package struct ToolFailure: Error, Sendable, CustomStringConvertible {
    package let description: String

    package init(_ description: String) { self.description = description }
}
