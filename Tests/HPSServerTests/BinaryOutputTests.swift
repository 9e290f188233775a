import HPS
import HPSServer
import NIOCore
import Testing

/// Lookups written straight into a response buffer (`ServedModel.lookup(_:appendingTo:)`),
/// and merged lookups into one buffer, batch after batch, that the batcher slices.
struct BinaryOutputTests {
    /// The little-endian floats of `buffer` from byte `offset` on.
    private func floats(_ buffer: ByteBuffer, from offset: Int) -> [Float] {
        var buffer = buffer
        buffer.moveReaderIndex(forwardBy: offset)
        var values: [Float] = []
        while let bits = buffer.readInteger(endianness: .little, as: UInt32.self) { values.append(Float(bitPattern: bits)) }
        return values
    }

    @Test("the floats appended after any number of bytes are the array lookup's, misses included",
          arguments: 0..<8)
    func appendedAfterPrefix(prefix: Int) throws {
        let fixture = try ServerFixture()
        let model = ServedModel(session: fixture.session)
        // Key 100 of table 0 and key 5 of table 1 are in no tier: their defaults.
        let batch = ServedModel.Batch(keysPerTable: [[3, 99, 100], [105, 5]])
        var buffer = ByteBuffer(repeating: 0xAB, count: prefix)
        let counts = try model.lookup(batch, appendingTo: &buffer)
        let (expected, expectedCounts) = try model.lookup(batch)
        #expect(expected.count == model.outputCount(batch))
        #expect(buffer.readableBytes == prefix + expected.count * 4)
        #expect(buffer.getBytes(at: 0, length: prefix) == [UInt8](repeating: 0xAB, count: prefix))
        #expect(floats(buffer, from: prefix) == expected)
        #expect(counts == expectedCounts)
        #expect(counts.defaults == 2)
    }

    @Test("merged batches' floats are each batch's own, batch after batch, with one count for all")
    func mergedBatches() throws {
        let fixture = try ServerFixture()
        let model = ServedModel(session: fixture.session)
        var random = SplitMix64(seed: 11)
        // Tables 0 and 1 hold keys 0..<100 and 100..<200; keys beyond them miss. Some batches leave a table empty.
        let batches = (0..<9).map { b in
            let keys = (0..<2).map { table in
                (0..<((b + table) % 4)).map { _ in Int64(table * 100) + Int64(random.next() % 130) }
            }
            return ServedModel.Batch(keysPerTable: keys)
        }
        var buffer = ByteBuffer()
        let counts = try model.lookup(batches, appendingTo: &buffer)
        let alone = try batches.map { try model.lookup($0) }
        #expect(floats(buffer, from: 0) == alone.flatMap(\.vectors))
        #expect(counts.keys == batches.reduce(0) { $0 + $1.totalKeys })
        #expect(counts.defaults == alone.reduce(0) { $0 + $1.counts.defaults })
        #expect(counts.defaults > 0)
    }

    @Test("a refused lookup leaves the buffer as it was")
    func refusedLeavesBuffer() throws {
        let fixture = try ServerFixture()
        let model = ServedModel(session: fixture.session)
        let tooMany = [Int64](repeating: 1, count: fixture.session.model.maxKeysPerLookup(table: 0) + 1)
        let batch = ServedModel.Batch(keysPerTable: [tooMany, []])
        var buffer = ByteBuffer(string: "header")
        #expect(throws: InferenceError.self) { try model.lookup(batch, appendingTo: &buffer) }
        #expect(String(buffer: buffer) == "header")
    }
}
