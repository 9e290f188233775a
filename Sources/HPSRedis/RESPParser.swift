package import NIOCore

/// A reply that breaks the protocol; the connection cannot go on after it.
package struct RESPProtocolError: Error, Sendable, CustomStringConvertible {
    /// What was wrong.
    package var reason: String
    /// One sentence.
    package var description: String { "malformed Redis reply: \(reason)" }
}

/// Reads RESP2 values from the front of a buffer of received bytes.
///
/// `parse` either consumes one whole value or, when the buffer ends inside a
/// value (a frame split across reads), consumes nothing and returns nil, so the
/// caller appends the next read and calls again.
package enum RESPParser {
    /// Parses one value from the front of `buffer`.
    /// - Returns: the value, or nil when `buffer` holds only part of one (nothing is consumed then).
    /// - Throws: `RESPProtocolError` when the bytes are not RESP.
    package static func parse(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        let start = buffer.readerIndex
        guard let value = try parseValue(&buffer) else {
            buffer.moveReaderIndex(to: start)
            return nil
        }
        return value
    }

    /// Parses one whole value from the front of `buffer` (call it only when
    /// `hasCompleteValue` is true): an array of one element per row of `sink`
    /// has its values copied into the rows and is answered `.integer(hits)`;
    /// any other value is parsed as `parse` does.
    package static func parse(_ buffer: inout ByteBuffer, into sink: VectorSink) throws(RESPProtocolError) -> RESPValue? {
        let result: (consumed: Int, hits: Int)? = buffer.withUnsafeReadableBytes { sinkArray($0, sink) }
        guard let result else {
            // Rows written before the reply turned out to be something else
            // count for nothing: the caller reads `found` only after `.integer`.
            sink.clear()
            return try parse(&buffer)
        }
        buffer.moveReaderIndex(forwardBy: result.consumed)
        return .integer(Int64(result.hits))
    }

    /// Reads an array of `sink.rows.count` elements at the front of `bytes`
    /// into the sink; nil if the bytes are something else (nothing is
    /// consumed then, though rows may have been written).
    private static func sinkArray(_ bytes: UnsafeRawBufferPointer, _ sink: VectorSink) -> (consumed: Int, hits: Int)? {
        guard bytes.count > 0, bytes[0] == UInt8(ascii: "*"), let (count, first) = headerNumber(bytes, 0),
              count == sink.rows.count else { return nil }
        var position = first, hits = 0
        for i in 0..<count {
            guard position < bytes.count else { return nil }
            let type = bytes[position]
            if type == UInt8(ascii: "$") {
                guard let (length, body) = headerNumber(bytes, position) else { return nil }
                if length < 0 {
                    sink.miss(i)
                    position = body
                    continue
                }
                let end = body + length
                guard end + 2 <= bytes.count, bytes[end] == 0x0D, bytes[end + 1] == 0x0A else { return nil }
                if sink.take(i, UnsafeRawBufferPointer(rebasing: bytes[body..<end])) { hits += 1 }
                position = end + 2
            } else if type == UInt8(ascii: "+") || type == UInt8(ascii: ":") || type == UInt8(ascii: "-") {
                // Not a value: skip the line.
                guard let (_, next) = lineEnd(bytes, position) else { return nil }
                sink.miss(i)
                position = next
            } else {
                return nil
            }
        }
        return (position, hits)
    }

    /// The CRLF ending the line that starts at `start`: (index of CR, index after LF).
    @inline(__always)
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> (Int, Int)? {
        var cr = start + 1
        while cr + 1 < bytes.count && !(bytes[cr] == 0x0D && bytes[cr + 1] == 0x0A) { cr += 1 }
        return cr + 1 < bytes.count ? (cr, cr + 2) : nil
    }

    /// The number of a `*n` or `$n` header line at `start` (-1 allowed), and the index after its CRLF.
    @inline(__always)
    private static func headerNumber(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> (Int, Int)? {
        guard let (cr, next) = lineEnd(bytes, start) else { return nil }
        var i = start + 1, negative = false, value = 0
        if i < cr && bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < cr, cr - i <= 10 else { return nil }
        while i < cr {
            let digit = Int(bytes[i]) &- 48
            guard digit >= 0 && digit <= 9 else { return nil }
            value = value &* 10 &+ digit
            i += 1
        }
        return (negative ? -value : value, next)
    }

    /// Whether `buffer` starts with a whole value, found by walking its headers
    /// without building anything: a large reply arriving in many reads is
    /// checked cheaply at each read and parsed once, when complete. Malformed
    /// bytes count as complete, so that `parse` reports them.
    package static func hasCompleteValue(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { valueEnd($0, 0) != nil }
    }

    private static func valueEnd(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        var cr = start + 1
        while cr + 1 < bytes.count && !(bytes[cr] == 0x0D && bytes[cr + 1] == 0x0A) { cr += 1 }
        guard cr + 1 < bytes.count else { return nil }
        let next = cr + 2
        switch bytes[start] {
        case UInt8(ascii: "$"), UInt8(ascii: "*"):
            var value = 0, negative = false, i = start + 1
            if i < cr && bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
            guard i < cr else { return next }
            while i < cr {
                let digit = Int(bytes[i]) - 48
                guard digit >= 0 && digit <= 9 && value < Int(Int32.max) else { return next }
                value = value * 10 + digit
                i += 1
            }
            if negative { return next }
            if bytes[start] == UInt8(ascii: "$") {
                let end = next + value + 2
                return end <= bytes.count ? end : nil
            }
            var position = next
            for _ in 0..<value {
                guard let end = valueEnd(bytes, position) else { return nil }
                position = end
            }
            return position
        default:
            return next
        }
    }

    private static func parseValue(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            return try readLine(&buffer).map { .simpleString(String(buffer: $0)) }
        case UInt8(ascii: "-"):
            return try readLine(&buffer).map { .error(String(buffer: $0)) }
        case UInt8(ascii: ":"):
            guard let line = try readLine(&buffer) else { return nil }
            return .integer(try integer(line))
        case UInt8(ascii: "$"):
            guard let line = try readLine(&buffer) else { return nil }
            let length = try lengthValue(line)
            if length == -1 { return .bulkString(nil) }
            guard length >= 0 && length < Int64(Int32.max) else {
                throw RESPProtocolError(reason: "bulk string length \(length)")
            }
            guard buffer.readableBytes >= Int(length) + 2, let bytes = buffer.readSlice(length: Int(length)) else { return nil }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError(reason: "bulk string of \(length) bytes not followed by CRLF")
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let line = try readLine(&buffer) else { return nil }
            let count = try lengthValue(line)
            if count == -1 { return .array(nil) }
            guard count >= 0 && count < Int64(Int32.max) else {
                throw RESPProtocolError(reason: "array length \(count)")
            }
            // Each element takes at least 3 bytes: give up early on a partial frame.
            guard buffer.readableBytes >= Int(count) * 3 else { return nil }
            var elements: [RESPValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let element = try parseValue(&buffer) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw RESPProtocolError(reason: "unknown type byte \(type)")
        }
    }

    /// The bytes up to the next CRLF (consumed with it), or nil if there is none yet.
    /// - Throws: for a CR followed by anything but LF, which no RESP line holds
    ///   (waiting for a CRLF after it would stall the connection until its timeout).
    private static func readLine(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> ByteBuffer? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: 0x0D), view.index(after: cr) < view.endIndex else { return nil }
        guard view[view.index(after: cr)] == 0x0A else {
            throw RESPProtocolError(reason: "a line holds a CR not followed by LF")
        }
        let line = buffer.readSlice(length: cr - view.startIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    /// A bulk string's or an array's length: -1 (null) or a count. Any other
    /// negative, "-0" included, and a count with a "+" sign are errors (`hasCompleteValue` calls every
    /// negative length complete, so that it is reported here).
    private static func lengthValue(_ line: ByteBuffer) throws(RESPProtocolError) -> Int64 {
        let value = try integer(line)
        let first = line.readableBytesView.first ?? 0
        // Digits, or -1; a sign "+" (which Int64's parser accepts) is not RESP.
        guard (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) || value == -1 else {
            throw RESPProtocolError(reason: "length \"\(String(buffer: line))\"")
        }
        return value
    }

    private static func integer(_ line: ByteBuffer) throws(RESPProtocolError) -> Int64 {
        guard let value = Int64(String(buffer: line)) else {
            throw RESPProtocolError(reason: "\"\(String(buffer: line))\" is not an integer")
        }
        return value
    }
}
