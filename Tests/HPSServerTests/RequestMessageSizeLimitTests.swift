@testable import HPSServer
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

/// The size check of gRPC request messages in an HTTP/2 stream's pipeline, in memory.
struct RequestMessageSizeLimitTests {
    static func data(_ bytes: [UInt8]) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes))))
    }

    /// The payloads that reached the transport and those sent back, after `frames` came in.
    static func run(limit: Int, sentHeaders: Bool = false, _ frames: [HTTP2Frame.FramePayload]) throws
        -> (passed: Int, sent: [HTTP2Frame.FramePayload]) {
        let channel = EmbeddedChannel(handler: RequestMessageSizeLimit(limit: limit))
        if sentHeaders {
            try channel.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200"])))
            _ = try channel.readOutbound(as: HTTP2Frame.FramePayload.self)
        }
        for frame in frames { try channel.writeInbound(frame) }
        var passed = 0
        while try channel.readInbound(as: HTTP2Frame.FramePayload.self) != nil { passed += 1 }
        var sent: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { sent.append(frame) }
        return (passed, sent)
    }

    @Test("messages up to the limit pass, even with prefixes split across DATA frames")
    func withinLimit() throws {
        // Two messages of 10 and 3 bytes, the frames cut inside prefixes and bodies.
        let (passed, sent) = try Self.run(limit: 10, [Self.data([0, 0, 0]), Self.data([0, 10, 1, 2, 3]),
                                                      Self.data([4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0]), Self.data([3, 1, 2, 3])])
        #expect(passed == 4 && sent.isEmpty)
    }

    @Test("a message over the limit: RESOURCE_EXHAUSTED naming the limit, a NO_ERROR reset, the frame kept back")
    func overLimit() throws {
        let (passed, sent) = try Self.run(limit: 10, [Self.data([0, 0, 0, 0, 2, 1, 2, 0, 0]), Self.data([0, 0, 11, 1, 2]),
                                                      Self.data([3, 4])])
        #expect(passed == 1)
        #expect(sent.count == 2)
        guard sent.count == 2, case let .headers(trailers) = sent[0], case let .rstStream(code) = sent[1] else { return }
        #expect(trailers.endStream && code == .noError)
        #expect(trailers.headers.first(name: ":status") == "200" && trailers.headers.first(name: "content-type") == "application/grpc")
        #expect(trailers.headers.first(name: "grpc-status") == "8")
        #expect(trailers.headers.first(name: "grpc-message")
            == "the request message of 11 bytes is larger than the server's limit of 10 bytes; raise it with hps serve --max-body-bytes")
    }

    @Test("once the response headers have gone out, the status goes as trailers alone")
    func afterHeaders() throws {
        let (_, sent) = try Self.run(limit: 10, sentHeaders: true, [Self.data([0, 0, 0, 1, 0])])
        guard case let .headers(trailers) = sent.first else { Issue.record("no trailers: \(sent)"); return }
        #expect(trailers.headers.first(name: ":status") == nil && trailers.headers.first(name: "grpc-status") == "8")
    }

    @Test("grpc-message is percent-encoded")
    func percentEncoding() {
        #expect(RequestMessageSizeLimit.percentEncoded("100% é\n") == "100%25 %C3%A9%0A")
    }
}
