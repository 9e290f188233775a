#if Serving
import NIOCore
import NIOHTTP2

/// Keeps a gRPC connection's inbound HTTP/2 frames flowing while the server
/// shuts down gracefully, working around a stall in swift-nio-http2 1.46.0 as
/// grpc-swift-nio-transport 2.9.2 uses it.
///
/// The stall: once the server has sent its first GOAWAY, `NIOHTTP2Handler`
/// refuses (RST_STREAM REFUSED_STREAM) a stream that a client opened before it
/// received the GOAWAY, but does not remember the refused stream
/// (`ConnectionStreamState.locallyResetStreamState`); the stream's next frame,
/// the WINDOW_UPDATE or DATA sent with its HEADERS, is then taken for a frame on
/// an idle stream: a connection error (`NIOHTTP2Errors.NoSuchStream`, GOAWAY
/// PROTOCOL_ERROR), on which `NIOHTTP2Handler` stops decoding what it has
/// read. The transport's connection handler keeps the connection open on that
/// error while it closes (the client's race, not a fault), so the bytes left
/// in the decoder wait for the client's next read: the next message of a
/// stream still open, or the PING ack that lets the connection finish closing,
/// is never handled if the client sends nothing more. grpcio clients that
/// multiplex many calls on one connection hit this whenever SIGTERM comes
/// while they send.
///
/// The fix: after such an error, while the connection is open, an empty read
/// and read-complete go into `NIOHTTP2Handler` on the next event-loop tick, so
/// it decodes the frames left (a later error is resumed in the same way).
/// Install with `install(on:)` on each accepted connection, after gRPC's pipeline.
enum HTTP2DecodingResumer {
    /// Adds the two handlers around the connection's `NIOHTTP2Handler`.
    /// Must run on the channel's event loop (as the transport's connection callbacks do).
    static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            let http2 = try pipeline.handler(type: NIOHTTP2Handler.self)
            let feeder = Feeder()
            try pipeline.addHandler(feeder, position: .before(http2))
            try pipeline.addHandler(Watcher(feeder: feeder), position: .after(http2))
        }
    }

    /// Sits before `NIOHTTP2Handler` and feeds it an empty read on request.
    final class Feeder: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer

        private var context: ChannelHandlerContext?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

        /// Makes `NIOHTTP2Handler` decode what its decoder holds, as a read of no new bytes would.
        func resume() {
            guard let context, context.channel.isActive else { return }
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(capacity: 0)))
            context.fireChannelReadComplete()
        }
    }

    /// Sits after `NIOHTTP2Handler`, where its errors pass, and asks the
    /// feeder to resume after each `NoSuchStream` connection error.
    final class Watcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTP2Frame
        typealias InboundOut = HTTP2Frame

        private let feeder: Feeder
        private var resumeScheduled = false

        init(feeder: Feeder) { self.feeder = feeder }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if error is NIOHTTP2Errors.NoSuchStream, !resumeScheduled {
                resumeScheduled = true
                // On the next tick: not inside NIOHTTP2Handler's decode loop, and
                // after the connection handler has decided whether to close.
                context.eventLoop.assumeIsolated().execute {
                    self.resumeScheduled = false
                    self.feeder.resume()
                }
            }
            context.fireErrorCaught(error)
        }
    }
}
#endif
