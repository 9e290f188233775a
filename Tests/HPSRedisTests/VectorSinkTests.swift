import NIOCore
import Testing

@testable import HPSRedis

struct VectorSinkTests {
    @Test("an HMGET reply's values go straight into the rows of its sink; null and wrong-size values are misses")
    func copiesValues() throws {
        let a: [UInt8] = [1, 2, 13, 10], b: [UInt8] = [9, 8, 7, 6]
        let text = Array("*4\r\n$4\r\n".utf8) + a + Array("\r\n$-1\r\n$3\r\nabc\r\n$4\r\n".utf8) + b + Array("\r\n:7\r\n".utf8)
        var buffer = ByteBuffer(bytes: text)
        let rows = (0..<4).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 4) }
        defer { rows.forEach { $0.deallocate() } }
        for row in rows { row.initializeMemory(as: UInt8.self, repeating: 0, count: 4) }
        let sink = VectorSink(rows: rows, valueBytes: 4)
        #expect(RESPParser.hasCompleteValue(buffer))
        #expect(try RESPParser.parse(&buffer, into: sink) == .integer(2))
        #expect(sink.found == [true, false, false, true])
        #expect(Array(UnsafeRawBufferPointer(start: rows[0], count: 4)) == a)
        #expect(Array(UnsafeRawBufferPointer(start: rows[3], count: 4)) == b)
        #expect(Array(UnsafeRawBufferPointer(start: rows[1], count: 4)) == [0, 0, 0, 0])
        // The next value is left for the ordinary parser.
        #expect(try RESPParser.parse(&buffer) == .integer(7))
    }

    @Test("a reply that is not an array of one value per row is handed back as it is")
    func otherReplies() throws {
        let rows = [UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 4)]
        defer { rows[0].deallocate() }
        let sink = VectorSink(rows: rows, valueBytes: 4)
        var moved = ByteBuffer(string: "-MOVED 3999 127.0.0.1:6381\r\n")
        #expect(try RESPParser.parse(&moved, into: sink) == .error("MOVED 3999 127.0.0.1:6381"))
        var longer = ByteBuffer(string: "*2\r\n$-1\r\n$-1\r\n")
        #expect(try RESPParser.parse(&longer, into: sink) == .array([.bulkString(nil), .bulkString(nil)]))
        #expect(sink.found == [false])
    }
}
