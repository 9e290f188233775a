@testable import HPSServer
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

/// The race that stalled a gRPC connection at SIGTERM, played deterministically
/// between a client and a server `NIOHTTP2Handler` in memory: a stream is open,
/// the server sends its first GOAWAY, and one read brings the server a stream
/// the client opened before it saw the GOAWAY followed by the open stream's next message.
struct HTTP2DecodingResumerTests {
    /// The open stream's DATA frames that reached the handlers after the server's
    /// `NIOHTTP2Handler`, once the event loop has run its pending tasks.
    static func dataOnOpenStream(resumer: Bool) throws -> Int {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        try client.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .client))
        try server.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
        if resumer { try HTTP2DecodingResumer.install(on: server).wait() }
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try client.connect(to: address).wait()
        try server.connect(to: address).wait()

        func clientBytes() throws -> ByteBuffer {
            var bytes = client.allocator.buffer(capacity: 0)
            while var chunk = try client.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&chunk) }
            return bytes
        }
        /// Moves bytes both ways until neither side has more to say.
        func exchange() throws {
            var moved = true
            while moved {
                moved = false
                while let bytes = try client.readOutbound(as: ByteBuffer.self) { moved = true; try server.writeInbound(bytes) }
                while let bytes = try server.readOutbound(as: ByteBuffer.self) { moved = true; try client.writeInbound(bytes) }
            }
            while try server.readInbound(as: HTTP2Frame.self) != nil {}
            while try client.readInbound(as: HTTP2Frame.self) != nil {}
        }

        let request: HPACKHeaders = [":method": "POST", ":scheme": "http", ":path": "/inference.GRPCInferenceService/ModelStreamInfer",
                                     ":authority": "localhost", "content-type": "application/grpc", "te": "trailers"]
        func message() -> HTTP2Frame.FramePayload {
            .data(.init(data: .byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 1, 42]))))
        }
        try exchange()
        client.writeAndFlush(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: request))), promise: nil)
        try exchange()

        // Sent by the client before it sees the server's GOAWAY, so not yet delivered.
        client.writeAndFlush(HTTP2Frame(streamID: 3, payload: .headers(.init(headers: request))), promise: nil)
        client.writeAndFlush(HTTP2Frame(streamID: 3, payload: message()), promise: nil)
        client.writeAndFlush(HTTP2Frame(streamID: 1, payload: message()), promise: nil)
        var raced = try clientBytes()
        server.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)),
                             promise: nil)

        // One read: stream 3 is refused (a stream error), its DATA is taken for a
        // frame on an idle stream (a NoSuchStream connection error); both are thrown here.
        #expect(throws: (any Error).self) { try server.writeInbound(raced.readSlice(length: raced.readableBytes)!) }
        server.embeddedEventLoop.run()
        var data = 0
        while let frame = try server.readInbound(as: HTTP2Frame.self) {
            if frame.streamID == 1, case .data = frame.payload { data += 1 }
        }
        return data
    }

    @Test("with the resumer, the open stream's message after a refused stream's frames is decoded")
    func resumes() throws {
        #expect(try Self.dataOnOpenStream(resumer: true) == 1)
    }

    @Test("without it, swift-nio-http2 leaves that message undecoded (when this fails, the library is fixed: drop the resumer)")
    func libraryStillStalls() throws {
        #expect(try Self.dataOnOpenStream(resumer: false) == 0)
    }
}
