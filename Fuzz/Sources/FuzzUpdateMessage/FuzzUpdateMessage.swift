import FuzzSupport
import HPSKafka

/// The Kafka update message parser (`UpdateMessage(decoding:vecSize:)`,
/// HugeCTR's format) and the topic names that say which table a message
/// updates (`UpdateTopic`), on arbitrary messages and names.
///
/// The input is laid out as
///
///     byte 0      the table's vec size (1–16)
///     byte 1      the topic name's length
///     then        the topic name, then the message
///
/// Checks: a message is accepted exactly when its header is HugeCTR's (magic,
/// value size of the vec size) and its body whole pairs; an accepted message
/// encodes back to its bytes; a topic name is accepted exactly when it is
/// `hps_et.<model>.<table>` with names of 1–120 of `[a-zA-Z0-9_-]`, and
/// writes back to itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUpdateMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard bytes.count >= 2 else { return 0 }
    let vecSize = Int(bytes[0] % 16) + 1
    let nameLength = min(Int(bytes[1]), bytes.count - 2)
    let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[2..<(2 + nameLength)]), as: UTF8.self)
    let message = UnsafeRawBufferPointer(rebasing: bytes[(2 + nameLength)...])

    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    let wellFormed = parts.count == 3 && parts[0] == "hps_et" && parts.dropFirst().allSatisfy { part in
        (1...120).contains(part.utf8.count) && part.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || byte == 0x2D
        }
    }
    if let topic = UpdateTopic(name) {
        check(wellFormed, "topic \(name) was accepted")
        check(topic.description == name, "topic \(name) reads back as \(topic)")
    } else {
        check(!wellFormed, "topic \(name) was refused")
    }

    let expected = message.count >= 8
        && message.loadUnaligned(fromByteOffset: 0, as: UInt32.self) == UpdateMessage.magic.littleEndian
        && message.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == UInt32(vecSize * 4).littleEndian
        && (message.count - 8) % (8 + vecSize * 4) == 0
    do {
        let decoded = try UpdateMessage(decoding: message, vecSize: vecSize)
        check(expected, "a message of \(message.count) bytes was accepted for vec size \(vecSize)")
        check(decoded.vectors.count == decoded.keys.count * vecSize, "the message's vectors do not match its keys")
        check(decoded.encoded().elementsEqual(message), "the message does not encode back to its bytes")
    } catch {
        check(!expected, "a well-formed message of \(message.count) bytes was refused: \(error)")
        check(!error.description.isEmpty, "a refusal without a message")
    }
    return 0
}
