import FuzzSupport
@testable import HPSRedis
import NIOCore

/// The RESP2 reply parser (`RESPParser`), as a Redis connection drives it, on
/// arbitrary bytes from a server.
///
/// The input is laid out as
///
///     byte 0      rows of a vector sink (0: none; else 1–8)
///     byte 1      the sink's value size (0–15 bytes)
///     byte 2      read size: the stream arrives in reads of 1–256 bytes
///     then        the bytes the server sent
///
/// Checks: `hasCompleteValue` and `parse` agree (a buffer said to be complete
/// parses or throws; a value parsed from it was said complete), and each parse
/// consumes bytes; the values parsed as the bytes arrive in reads are those
/// parsed from all the bytes at once; a value read into the sink writes the
/// rows its plain parse says (each bulk string of the value size, and only
/// those, copied).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard bytes.count >= 3 else { return 0 }
    let sinkRows = Int(bytes[0] % 9)
    let valueBytes = Int(bytes[1] % 16)
    let readSize = Int(bytes[2]) + 1
    let stream = UnsafeRawBufferPointer(rebasing: bytes[3...])

    let whole = values(stream, readSize: stream.count)
    let inReads = values(stream, readSize: readSize)
    check(whole.values == inReads.values && whole.failed == inReads.failed,
          "reads of \(readSize) bytes parsed \(inReads.values) (failed: \(inReads.failed)), all at once \(whole.values) (failed: \(whole.failed))")

    guard sinkRows > 0, let first = whole.values.first else { return 0 }
    let storage = UnsafeMutableRawPointer.allocate(byteCount: sinkRows * max(valueBytes, 1), alignment: 16)
    defer { storage.deallocate() }
    let sink = VectorSink(rows: (0..<sinkRows).map { storage + $0 * max(valueBytes, 1) }, valueBytes: valueBytes)
    var received = ByteBuffer(bytes: stream)
    let parsed: RESPValue?
    do {
        parsed = try RESPParser.parse(&received, into: sink)
    } catch {
        check(false, "the sink's parse threw \(error) where the plain parse read \(first)")
        return 0
    }
    // The sink takes an array of one element per row whose elements are not
    // arrays (HMGET's reply); any other reply is handed back as parse reads it.
    if case let .array(elements?) = first, elements.count == sinkRows,
       !elements.contains(where: { if case .array = $0 { return true } else { return false } }) {
        var hits = 0
        for (i, element) in elements.enumerated() {
            if case let .bulkString(value?) = element, value.readableBytes == valueBytes {
                hits += 1
                check(sink.found[i], "element \(i) (\(valueBytes) bytes) was not copied")
                check(value.withUnsafeReadableBytes { $0.elementsEqual(UnsafeRawBufferPointer(start: sink.rows[i], count: valueBytes)) },
                      "element \(i)'s row holds other bytes than the element")
            } else {
                check(!sink.found[i], "element \(i), \(element), was copied")
            }
        }
        check(parsed == .integer(Int64(hits)), "the sink's parse answered \(String(describing: parsed)), not \(hits) hits")
    } else {
        check(parsed == first, "the sink's parse read \(String(describing: parsed)), the plain parse \(first)")
        check(sink.found.allSatisfy { !$0 }, "a reply other than an array of one element per row wrote a row")
    }
    return 0
}

/// The values a connection parses from `stream` arriving in reads of `readSize`
/// bytes, and whether it stopped at a protocol error.
private func values(_ stream: UnsafeRawBufferPointer, readSize: Int) -> (values: [RESPValue], failed: Bool) {
    var received = ByteBuffer()
    var parsed: [RESPValue] = []
    var offset = 0
    repeat {
        let end = min(stream.count, offset + max(readSize, 1))
        received.writeBytes(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
        offset = end
        while RESPParser.hasCompleteValue(received) {
            let before = received.readerIndex
            do {
                guard let value = try RESPParser.parse(&received) else {
                    check(false, "hasCompleteValue said complete, parse said incomplete, at byte \(before)")
                    return (parsed, true)
                }
                check(received.readerIndex > before, "a parse consumed nothing")
                parsed.append(value)
            } catch {
                check(!error.description.isEmpty, "a protocol error without a message")
                return (parsed, true)
            }
        }
        // On a copy: a parse that throws may have consumed bytes (the connection closes then).
        var probe = received
        if probe.readableBytes > 0, let value = try? RESPParser.parse(&probe) {
            check(false, "parse read \(value) from bytes hasCompleteValue called incomplete")
        }
        received.discardReadBytes()
    } while offset < stream.count
    return (parsed, false)
}
