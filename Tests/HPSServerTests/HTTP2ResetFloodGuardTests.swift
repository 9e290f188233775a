import Foundation
@testable import HPSServer
import NIOCore
import NIOEmbedded
import Testing

/// The guard in front of a gRPC connection's `NIOHTTP2Handler`: bytes pass
/// unchanged until the client's RST_STREAM frames reach the limit within the
/// window; then nothing more passes and the connection is ended.
struct HTTP2ResetFloodGuardTests {
    /// A frame: 9-byte header (length, type, flags, stream) and payload.
    private func frame(type: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, 0,
                UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// The client's preface and SETTINGS, then `pairs` streams opened (HEADERS) and reset (RST_STREAM), with a DATA frame between.
    private func flood(pairs: Int) -> [UInt8] {
        var bytes = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(type: 0x4, stream: 0, payload: [])
        for i in 0..<pairs {
            let stream = UInt32(2 * i + 1)
            bytes += frame(type: 0x1, stream: stream, payload: [0x83, 0x86, 0x84])
            bytes += frame(type: 0x0, stream: stream, payload: [UInt8](repeating: 0x03, count: 300))  // a payload holding RST_STREAM's type byte
            bytes += frame(type: 0x3, stream: stream, payload: [0, 0, 0, 8])
        }
        return bytes
    }

    /// A connected channel with the guard alone in its pipeline.
    private func channel(limit: Int, window: TimeAmount = .seconds(30)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: HTTP2ResetFloodGuard(limit: limit, window: window))
        try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// Writes `bytes` in reads of `chunk` bytes while the channel is active; returns the bytes that passed the guard.
    private func send(_ bytes: [UInt8], in chunk: Int, to channel: EmbeddedChannel) throws -> [UInt8] {
        var passed: [UInt8] = []
        var start = 0
        while start < bytes.count && channel.isActive {
            let end = min(bytes.count, start + chunk)
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<end]))
            while var buffer = try channel.readInbound(as: ByteBuffer.self) { passed += buffer.readBytes(length: buffer.readableBytes)! }
            start = end
        }
        return passed
    }

    @Test("below the limit every byte passes unchanged, in reads of any size", arguments: [1, 7, 9, 4096])
    func belowLimitPasses(chunk: Int) throws {
        let channel = try channel(limit: 50)
        let bytes = flood(pairs: 49)
        #expect(try send(bytes, in: chunk, to: channel) == bytes)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test("the limit's reset ends the connection: the read holding it and every later one stop at the guard", arguments: [1, 9, 4096])
    func limitEndsConnection(chunk: Int) throws {
        let channel = try channel(limit: 50)
        let bytes = flood(pairs: 200)
        let passed = try send(bytes, in: chunk, to: channel)
        #expect(!channel.isActive)
        // Everything before the read that completed the 50th RST_STREAM's header passed, and nothing from that read on.
        let lastHeaderByte = 24 + 9 + 49 * (12 + 309 + 13) + 12 + 309 + 8
        #expect(passed.count <= lastHeaderByte && passed.count > lastHeaderByte - chunk)
        #expect(passed == Array(bytes[0..<passed.count]))
    }

    @Test("resets in earlier windows do not count toward the limit")
    func windowRestarts() throws {
        let channel = try channel(limit: 50, window: .milliseconds(1))
        let bytes = flood(pairs: 40)
        #expect(try send(bytes, in: bytes.count, to: channel) == bytes)
        var later: [UInt8] = []
        for i in 40..<80 {
            usleep(3_000)  // past the window
            let stream = UInt32(2 * i + 1)
            later += try send(frame(type: 0x3, stream: stream, payload: [0, 0, 0, 8]), in: 13, to: channel)
        }
        #expect(later.count == 40 * 13)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}
