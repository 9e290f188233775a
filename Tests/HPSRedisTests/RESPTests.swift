import NIOCore
import Testing

@testable import HPSRedis

struct RESPTests {
    func parseAll(_ text: [UInt8]) throws -> [RESPValue] {
        var buffer = ByteBuffer(bytes: text)
        var values: [RESPValue] = []
        while let value = try RESPParser.parse(&buffer) { values.append(value) }
        #expect(buffer.readableBytes == 0)
        return values
    }

    func bulk(_ bytes: [UInt8]) -> RESPValue { .bulkString(ByteBuffer(bytes: bytes)) }

    @Test("simple strings, errors and integers")
    func scalars() throws {
        let values = try parseAll(Array("+OK\r\n-MOVED 3999 127.0.0.1:6381\r\n:42\r\n:-7\r\n".utf8))
        #expect(values == [.simpleString("OK"), .error("MOVED 3999 127.0.0.1:6381"), .integer(42), .integer(-7)])
    }

    @Test("bulk strings carry binary bytes, and may be empty or null")
    func bulkStrings() throws {
        let binary: [UInt8] = [0, 13, 10, 255, 36, 42]
        let text = Array("$6\r\n".utf8) + binary + Array("\r\n$0\r\n\r\n$-1\r\n".utf8)
        let values = try parseAll(text)
        #expect(values == [bulk(binary), bulk([]), .bulkString(nil)])
    }

    @Test("arrays nest, and may be empty or null")
    func arrays() throws {
        let values = try parseAll(Array("*3\r\n:1\r\n*2\r\n$3\r\nfoo\r\n$-1\r\n*0\r\n*-1\r\n".utf8))
        #expect(values == [.array([.integer(1), .array([bulk(Array("foo".utf8)), .bulkString(nil)]), .array([])]), .array(nil)])
    }

    @Test("a frame split at every byte is read whole once complete")
    func partialFrames() throws {
        let binary: [UInt8] = (0..<40).map { UInt8($0 * 7 & 0xFF) }
        let frame = Array("*2\r\n$40\r\n".utf8) + binary + Array("\r\n:5\r\n".utf8)
        for cut in 1..<frame.count {
            var buffer = ByteBuffer(bytes: frame[0..<cut])
            #expect(try RESPParser.parse(&buffer) == nil, "cut at \(cut)")
            #expect(buffer.readableBytes == cut, "nothing consumed at cut \(cut)")
            buffer.writeBytes(frame[cut...])
            #expect(try RESPParser.parse(&buffer) == .array([bulk(binary), .integer(5)]))
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("bytes that are not RESP are an error")
    func malformed() {
        var buffer = ByteBuffer(string: "?what\r\n")
        #expect(throws: RESPProtocolError.self) { try RESPParser.parse(&buffer) }
        var length = ByteBuffer(string: ":12x\r\n")
        #expect(throws: RESPProtocolError.self) { try RESPParser.parse(&length) }
        var missingCRLF = ByteBuffer(string: "$3\r\nfooXY")
        #expect(throws: RESPProtocolError.self) { try RESPParser.parse(&missingCRLF) }
    }

    @Test("a line with a CR not followed by LF is an error, not a frame waiting for more bytes (found by FuzzRESP)")
    func loneCarriageReturn() throws {
        // The fuzzer's input (Fuzz/Regressions/RESP/lone-cr-in-bulk-header): the
        // bulk string's header line is "$4\r". hasCompleteValue called the reply
        // complete, parse called it incomplete, so a connection would have waited
        // for bytes that never come until its command timed out.
        let reply = Array("*2\r\n-ERR wrong\r\n$4\r\r\n\nabcd\r\n".utf8)
        #expect(RESPParser.hasCompleteValue(ByteBuffer(bytes: reply)))
        var buffer = ByteBuffer(bytes: reply)
        #expect(throws: RESPProtocolError.self) { try RESPParser.parse(&buffer) }
        for line in ["+O\rK\r\n", "-ERR\rx\r\n", ":1\r2\r\n", "*1\r\r\n:1\r\n"] {
            var bytes = ByteBuffer(string: line)
            #expect(throws: RESPProtocolError.self, "\(line.debugDescription)") { try RESPParser.parse(&bytes) }
        }
        // A CR that is the last byte read may still be followed by its LF.
        var partial = ByteBuffer(string: "+OK\r")
        #expect(try RESPParser.parse(&partial) == nil)
    }

    @Test("a length of -0 (or any negative but -1) is an error, as hasCompleteValue expects (found by FuzzRESP)")
    func negativeZeroLength() {
        // Fuzz/Regressions/RESP/negative-zero-length: "$-0\r\n4". hasCompleteValue
        // called it complete (a negative length), parse read an empty bulk string
        // still waiting for its CRLF: the connection would have stalled.
        for reply in ["$-0\r\n4", "*-0\r\n", "$-2\r\n", "*-7\r\n", "*+3\r\n$8\r\n", "$+1\r\nx\r\n"] {
            #expect(RESPParser.hasCompleteValue(ByteBuffer(string: reply)), "\(reply.debugDescription)")
            var buffer = ByteBuffer(string: reply)
            #expect(throws: RESPProtocolError.self, "\(reply.debugDescription)") { try RESPParser.parse(&buffer) }
        }
    }

    @Test("commands encode as arrays of bulk strings")
    func encoding() throws {
        var command = RedisCommand(arguments: 3)
        command.append("HMGET")
        command.append("k")
        let binary: [UInt8] = [0, 13, 10]
        binary.withUnsafeBytes { command.append($0) }
        #expect(command.isComplete)
        #expect(Array(command.bytes.readableBytesView) == Array("*3\r\n$5\r\nHMGET\r\n$1\r\nk\r\n$3\r\n".utf8) + binary + [13, 10])
        // What is encoded parses back.
        var bytes = command.bytes
        #expect(try RESPParser.parse(&bytes) == .array([bulk(Array("HMGET".utf8)), bulk([107]), bulk(binary)]))
    }
}

struct RESPCompletenessTests {
    @Test("a value is complete only once its last byte arrived")
    func completeness() {
        let frame = Array("*3\r\n$4\r\n\r\n\r\n$-1\r\n*1\r\n:7\r\n".utf8)
        for cut in 0..<frame.count {
            #expect(!RESPParser.hasCompleteValue(ByteBuffer(bytes: frame[0..<cut])), "cut at \(cut)")
        }
        #expect(RESPParser.hasCompleteValue(ByteBuffer(bytes: frame)))
        #expect(RESPParser.hasCompleteValue(ByteBuffer(string: "?junk\r\n")))
    }
}
