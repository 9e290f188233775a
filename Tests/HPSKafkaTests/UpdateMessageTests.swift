import HPS
import Testing

@testable import HPSKafka

/// HugeCTR's message format, topics and key groups, without a broker.
struct UpdateMessageTests {
    /// A message's bytes written plainly, field after field, as HugeCTR's sink lays them out.
    func reference(keys: [Int64], vectors: [Float], vecSize: Int) -> [UInt8] {
        var bytes: [UInt8] = Array("HCTR".utf8)
        withUnsafeBytes(of: UInt32(vecSize * 4).littleEndian) { bytes += $0 }
        for (i, key) in keys.enumerated() {
            withUnsafeBytes(of: key.littleEndian) { bytes += $0 }
            for value in vectors[(i * vecSize)..<((i + 1) * vecSize)] {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
            }
        }
        return bytes
    }

    @Test("encoding writes HugeCTR's layout, and decoding reads it back exactly")
    func roundTrip() throws {
        var random = SplitMix64(seed: 7)
        let keys = (0..<37).map { _ in Int64(bitPattern: random.next()) }
        let vectors = (0..<(37 * 5)).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0x7f7f_ffff) }
        let message = UpdateMessage(keys: keys, vectors: vectors, vecSize: 5)
        let bytes = message.encoded()
        #expect(bytes == reference(keys: keys, vectors: vectors, vecSize: 5))
        let decoded = try bytes.withUnsafeBytes { try UpdateMessage(decoding: $0, vecSize: 5) }
        #expect(decoded.keys == keys)
        #expect(decoded.vectors.map(\.bitPattern) == vectors.map(\.bitPattern))
    }

    @Test("a message with no pairs (HugeCTR's beacon) decodes to no keys")
    func beacon() throws {
        let bytes = reference(keys: [], vectors: [], vecSize: 3)
        let decoded = try bytes.withUnsafeBytes { try UpdateMessage(decoding: $0, vecSize: 3) }
        #expect(decoded.keys.isEmpty && decoded.vectors.isEmpty)
    }

    @Test("each malformed message is refused with what is wrong")
    func malformed() throws {
        let good = reference(keys: [1, 2], vectors: [1, 2, 3, 4], vecSize: 2)
        func decode(_ bytes: [UInt8], vecSize: Int = 2) -> UpdateMessageError? {
            do {
                _ = try bytes.withUnsafeBytes { try UpdateMessage(decoding: $0, vecSize: vecSize) }
                return nil
            } catch let error as UpdateMessageError {
                return error
            } catch {
                return nil
            }
        }
        #expect(decode(Array(good[0..<5])) == .truncatedHeader(bytes: 5))
        var wrongMagic = good
        wrongMagic[0] = UInt8(ascii: "X")
        #expect(decode(wrongMagic) == .badMagic(found: UInt32(littleEndian: 0x5254_4358)))
        #expect(decode(good, vecSize: 3) == .valueSize(found: 8, expected: 12))
        #expect(decode(Array(good.dropLast(3))) == .truncatedPair(bytes: good.count - 3, pairBytes: 16))
        #expect(decode(good + [0]) == .truncatedPair(bytes: good.count + 1, pairBytes: 16))
        #expect(UpdateMessageError.valueSize(found: 8, expected: 12).description
            == "the message's value size is 8 bytes, but the table's vectors take 12 (vec size × 4)")
    }

    @Test("key groups are XXH3-64 of the key's bytes, as xxHash computes them")
    func keyGroups() {
        // From Python's xxhash package: xxhash.xxh3_64(struct.pack('<q', key)).intdigest().
        let known: [(Int64, UInt64)] = [
            (0, 14_374_147_212_387_527_897), (1, 3_439_722_301_264_460_078), (-1, 5_841_669_975_847_748_627),
            (42, 15_395_265_915_043_915_720), (123_456_789, 2_817_400_364_357_085_909),
            (-9_876_543_210, 11_754_731_611_798_903_850), (1 << 62, 14_131_633_201_323_278_829),
        ]
        for (key, hash) in known { #expect(KeyGroups.xxh3(key) == hash, "key \(key)") }
        let groups = KeyGroups(count: 64)
        #expect(groups.group(of: 42) == Int(UInt64(15_395_265_915_043_915_720) % 64))
        #expect(KeyGroups.partition(ofGroup: 63, partitions: 4) == 3)
    }

    @Test("topics are hps_et.<model>.<table>; other names are not update topics")
    func topics() {
        let topic = UpdateTopic(model: "8_table", table: "table-3")
        #expect(topic.description == "hps_et.8_table.table-3")
        #expect(UpdateTopic("hps_et.8_table.table-3") == topic)
        for name in ["hps_et.m", "hps_et.m.t.x", "other.m.t", "hps_et..t", "hps_et.m.t!", "hps_et.m." + String(repeating: "a", count: 121)] {
            #expect(UpdateTopic(name) == nil, "\(name)")
        }
    }

    @Test("subscriptions wrap each filter as HugeCTR does; its default filter follows every model instead, with a warning")
    func subscriptions() {
        let wrapped = UpdateTopic.subscriptions(filters: ["m", "seed_.*"], models: ["m"])
        #expect(wrapped.patterns == ["^hps_et\\.m\\..+$", "^hps_et\\.seed_.*\\..+$"])
        #expect(wrapped.warnings.isEmpty)
        let defaults = UpdateTopic.subscriptions(filters: ["^hps_.+$"], models: ["8_table", "a-b"])
        #expect(defaults.patterns == ["^hps_et\\.8_table\\..+$", "^hps_et\\.a\\-b\\..+$"])
        #expect(defaults.warnings.count == 1)
        let anchored = UpdateTopic.subscriptions(filters: ["^m$"], models: ["m"])
        #expect(anchored.warnings.count == 1)
    }
}
