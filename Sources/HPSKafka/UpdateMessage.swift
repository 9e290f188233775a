/// One Kafka message of embedding updates in HugeCTR's format
/// (`HugeCTR/src/hps/kafka_message.cpp`, v24.06), all little-endian:
///
///     uint32  magic, 'H' | 'C' << 8 | 'T' << 16 | 'R' << 24
///     uint32  value size in bytes (vec size × 4 for float32 vectors)
///     then, repeated: int64 key, value bytes
///
/// A message with no pairs is valid (HugeCTR's producer sends one as a
/// beacon). The topic names the table (`UpdateTopic`).
public struct UpdateMessage: Sendable, Equatable {
    /// The magic number that opens every message ("HCTR" read as a little-endian uint32).
    public static let magic: UInt32 = 0x5254_4348
    /// Bytes before the first pair.
    public static let headerBytes = 8

    /// The keys, in message order.
    public var keys: [Int64]
    /// `keys.count × vecSize` floats, row i for `keys[i]`.
    public var vectors: [Float]
    /// Floats per vector.
    public var vecSize: Int

    /// A message of `keys` and their vectors.
    public init(keys: [Int64], vectors: [Float], vecSize: Int) {
        precondition(vecSize > 0 && vectors.count == keys.count * vecSize, "vectors must hold keys.count × vecSize floats")
        self.keys = keys
        self.vectors = vectors
        self.vecSize = vecSize
    }

    /// Reads a message's bytes, checking them against the table's vec size.
    /// - Throws: `UpdateMessageError` naming what is wrong; nothing is read from a message with an error.
    public init(decoding bytes: UnsafeRawBufferPointer, vecSize: Int) throws(UpdateMessageError) {
        guard bytes.count >= Self.headerBytes else { throw .truncatedHeader(bytes: bytes.count) }
        let magic = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard magic == Self.magic else { throw .badMagic(found: magic) }
        let valueBytes = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        guard valueBytes == vecSize * 4 else { throw .valueSize(found: valueBytes, expected: vecSize * 4) }
        let pairBytes = 8 + valueBytes
        let body = bytes.count - Self.headerBytes
        guard body % pairBytes == 0 else { throw .truncatedPair(bytes: bytes.count, pairBytes: pairBytes) }
        let n = body / pairBytes
        var keys = [Int64](repeating: 0, count: n)
        var vectors = [Float](repeating: 0, count: n * vecSize)
        vectors.withUnsafeMutableBytes { out in
            var offset = Self.headerBytes
            for i in 0..<n {
                keys[i] = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int64.self))
                // Floats are stored as the host writes them: little-endian on every platform HugeCTR runs.
                out.baseAddress!.advanced(by: i * valueBytes)
                    .copyMemory(from: bytes.baseAddress!.advanced(by: offset + 8), byteCount: valueBytes)
                offset += pairBytes
            }
        }
        self.keys = keys
        self.vectors = vectors
        self.vecSize = vecSize
    }

    /// The message's bytes.
    public func encoded() -> [UInt8] {
        vectors.withUnsafeBytes { rows in
            Self.encode(count: keys.count, vecSize: vecSize, key: { keys[$0] },
                        row: { rows.baseAddress!.advanced(by: $0 * vecSize * 4) })
        }
    }

    /// The bytes of one message of `count` pairs: pair i is `key(i)` and the
    /// vecSize floats at `row(i)`.
    static func encode(count: Int, vecSize: Int, key: (Int) -> Int64, row: (Int) -> UnsafeRawPointer) -> [UInt8] {
        let valueBytes = vecSize * 4
        let pairBytes = 8 + valueBytes
        var bytes = [UInt8](repeating: 0, count: headerBytes + count * pairBytes)
        bytes.withUnsafeMutableBytes { out in
            out.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            out.storeBytes(of: UInt32(valueBytes).littleEndian, toByteOffset: 4, as: UInt32.self)
            var offset = headerBytes
            for i in 0..<count {
                out.storeBytes(of: key(i).littleEndian, toByteOffset: offset, as: Int64.self)
                out.baseAddress!.advanced(by: offset + 8).copyMemory(from: row(i), byteCount: valueBytes)
                offset += pairBytes
            }
        }
        return bytes
    }
}

/// What is wrong with a message that cannot be applied.
public enum UpdateMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer than the 8 bytes of the header.
    case truncatedHeader(bytes: Int)
    /// The first four bytes are not "HCTR".
    case badMagic(found: UInt32)
    /// The header's value size is not the table's vec size × 4.
    case valueSize(found: Int, expected: Int)
    /// The pairs do not fill the message: it was cut off or padded.
    case truncatedPair(bytes: Int, pairBytes: Int)
    /// The topic names no table of a served model.
    case unknownTable(topic: String)
    /// A key does not fit the model's 32-bit keys (`supportlonglong: false`).
    case keyOutOfRange(key: Int64)

    /// One sentence naming what to fix.
    public var description: String {
        switch self {
        case let .truncatedHeader(bytes):
            return "the message has \(bytes) bytes, fewer than the 8 of its header (magic and value size)"
        case let .badMagic(found):
            return "the message does not start with HugeCTR's magic \"HCTR\" (found 0x\(String(found, radix: 16)))"
        case let .valueSize(found, expected):
            return "the message's value size is \(found) bytes, but the table's vectors take \(expected) (vec size × 4)"
        case let .truncatedPair(bytes, pairBytes):
            return "the message's \(bytes) bytes are not its 8-byte header and whole pairs of \(pairBytes) bytes (key and vector): it was cut off"
        case let .unknownTable(topic):
            return "topic \(topic) names no table of a served model"
        case let .keyOutOfRange(key):
            return "key \(key) does not fit the model's 32-bit keys (supportlonglong is false)"
        }
    }
}
