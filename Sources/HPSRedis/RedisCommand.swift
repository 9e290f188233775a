package import NIOCore

/// One command, encoded as a RESP array of bulk strings, ready to be written.
///
/// Built argument by argument straight into one buffer, so a command of many
/// fields (an `HMGET` of a whole chunk of keys) costs no allocation per field.
package struct RedisCommand: Sendable {
    /// The encoded bytes.
    package private(set) var bytes: ByteBuffer
    /// The arguments appended so far.
    package private(set) var argumentCount = 0
    private let declaredCount: Int
    /// Where the values of this command's reply go, for an `HMGET` of
    /// vectors; nil (the default) hands the reply back as a `RESPValue`.
    package var sink: VectorSink?

    /// Starts a command of exactly `arguments` arguments (the name counts as one).
    package init(arguments: Int, capacity: Int = 64) {
        declaredCount = arguments
        bytes = ByteBuffer()
        bytes.reserveCapacity(capacity + 16)
        bytes.writeStaticString("*")
        bytes.writeString(String(arguments))
        bytes.writeStaticString("\r\n")
    }

    /// A command of text arguments, such as `["CLUSTER", "SLOTS"]`.
    package init(_ arguments: [String]) {
        self.init(arguments: arguments.count)
        for argument in arguments { append(argument) }
    }

    /// Appends a text argument.
    package mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a binary argument.
    package mutating func append(_ raw: UnsafeRawBufferPointer) {
        precondition(argumentCount < declaredCount, "more arguments than declared")
        bytes.writeStaticString("$")
        bytes.writeString(String(raw.count))
        bytes.writeStaticString("\r\n")
        bytes.writeBytes(raw)
        bytes.writeStaticString("\r\n")
        argumentCount += 1
    }

    /// Whether every declared argument was appended.
    package var isComplete: Bool { argumentCount == declaredCount }
}
