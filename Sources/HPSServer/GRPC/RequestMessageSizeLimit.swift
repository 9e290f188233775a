#if Serving
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Refuses a gRPC request message over the server's size limit with the status
/// RESOURCE_EXHAUSTED and a message naming the limit and how to raise it, from
/// the message's 5-byte length prefix, before its body is read.
///
/// Why not the transport alone: grpc-swift-nio-transport 2.9.2 checks the same
/// limit (`maxRequestPayloadSize`) in its message decoder, but its stream state
/// machine turns the decoder's RESOURCE_EXHAUSTED into an internal "Failed to
/// decode message" and its stream handler closes the HTTP/2 stream without a
/// status (RST_STREAM CANCEL), which clients report as CANCELLED.
///
/// One handler per HTTP/2 stream, first in the stream's pipeline (before the
/// transport's `GRPCServerStreamHandler`), watching the DATA frames go by. On a
/// message over the limit it sends the status trailers itself (a trailers-only
/// response when no headers have gone out) and resets the stream with NO_ERROR,
/// keeping the frame from the transport; the stream's close then ends the RPC
/// (its handler sees the request stream fail), as a client's reset would.
final class RequestMessageSizeLimit: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The largest message accepted, in bytes (the transport's `maxRequestPayloadSize`).
    let limit: Int
    /// Body bytes of the current message still to come.
    private var bodyLeft = 0
    /// Prefix bytes of the next message seen so far (at most 5), big-endian in `prefix`.
    private var prefixBytes = 0
    private var prefix: UInt64 = 0
    /// Whether the response headers have gone out (then the status goes as trailers alone).
    private var sentHeaders = false
    /// Whether the status has been sent: nothing more is checked.
    private var refused = false

    /// A check of each request message against `limit` bytes.
    init(limit: Int) { self.limit = limit }

    /// Adds the check first in an accepted HTTP/2 stream's pipeline.
    /// Must run on the channel's event loop (as the transport's stream callback does).
    static func install(limit: Int) -> @Sendable (any Channel) -> EventLoopFuture<Void> {
        { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RequestMessageSizeLimit(limit: limit), position: .first)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After the refusal nothing more reaches the transport: the reset closes the stream.
        if refused { return }
        if case let .data(frame) = unwrapInboundIn(data), case let .byteBuffer(bytes) = frame.data,
           let length = oversizedMessage(in: bytes) {
            refused = true
            refuse(context: context, length: length)
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .headers = unwrapOutboundIn(data) { sentHeaders = true }
        context.write(data, promise: promise)
    }

    /// Walks the length-prefixed messages in `bytes` (one DATA frame's payload);
    /// the declared length of the first message over the limit, if any.
    private func oversizedMessage(in bytes: ByteBuffer) -> Int? {
        var offset = bytes.readerIndex
        let end = bytes.writerIndex
        while offset < end {
            if bodyLeft > 0 {
                let skipped = min(bodyLeft, end - offset)
                bodyLeft -= skipped
                offset += skipped
                continue
            }
            // The prefix: a compression flag byte, then the length as a big-endian UInt32.
            prefix = prefix << 8 | UInt64(bytes.getInteger(at: offset, as: UInt8.self)!)
            prefixBytes += 1
            offset += 1
            if prefixBytes == 5 {
                let length = Int(UInt32(truncatingIfNeeded: prefix))
                prefix = 0
                prefixBytes = 0
                if length > limit { return length }
                bodyLeft = length
            }
        }
        return nil
    }

    /// Sends RESOURCE_EXHAUSTED with `InferenceError.messageTooLarge`'s sentence,
    /// ending the response, then RST_STREAM NO_ERROR, which tells the client to
    /// stop sending without overriding the status (a CANCEL would: grpcio then
    /// reports CANCELLED to a client still sending).
    private func refuse(context: ChannelHandlerContext, length: Int) {
        var headers: HPACKHeaders = sentHeaders ? [:] : [":status": "200", "content-type": "application/grpc"]
        headers.add(name: "grpc-status", value: "8")  // RESOURCE_EXHAUSTED
        headers.add(name: "grpc-message", value: Self.percentEncoded(InferenceError.messageTooLarge(bytes: length, limit: limit).description))
        context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
    }

    /// `text` as the grpc-message header carries it: bytes outside printable ASCII, and '%', as %XX.
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            if (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                encoded += byte < 0x10 ? "%0" + hex : "%" + hex
            }
        }
        return encoded
    }
}
#endif
