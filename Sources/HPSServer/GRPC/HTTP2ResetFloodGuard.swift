#if Serving
import NIOCore
import NIOHTTP2

/// Closes a gRPC connection whose client resets streams faster than
/// swift-nio-http2 allows, before `NIOHTTP2Handler` sees the reset over its
/// limit: works around memory that the transport keeps for every connection
/// closed on that handler's own limit.
///
/// swift-nio-http2 1.46 permits 200 RST_STREAM frames per 30 s on a
/// connection and closes it with a connection error on the next (its answer
/// to the rapid-reset attack, CVE-2023-44487). On that path, as
/// grpc-swift-nio-transport 2.9.2 serves it, each closed connection leaves
/// about 0.3 MB resident for good (`docs/upstream/grpc-nio-transport-reset-flood-memory.md`),
/// so a client that reconnects and floods again grows the server without
/// bound; connections with as many resets that end otherwise keep nothing.
///
/// This handler sits before `NIOHTTP2Handler`, reads only the frame headers
/// of the bytes going to it (after the client's connection preface: 9 bytes
/// each, the payloads skipped), and counts RST_STREAM frames in the same
/// window. At the limit it drops the bytes read with that frame and shuts
/// the connection's input down (`shutDown`), so the rapid-reset path of
/// `NIOHTTP2Handler` is never entered and the transport ends the connection
/// as it does when a client closes. Clients within the limit are not affected.
final class HTTP2ResetFloodGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// swift-nio-http2's own limit, which this one must stay below.
    static let defaultLimit = 199
    static let defaultWindow = TimeAmount.seconds(30)
    /// How long a connection whose input was shut down may stay open before it is closed whole.
    static let fallbackDelay = TimeAmount.seconds(5)

    /// The client's connection preface ("PRI * HTTP/2.0…"), before the first frame.
    private static let prefaceBytes = 24
    private static let frameHeaderBytes = 9
    private static let rstStreamType: UInt8 = 0x3

    private let limit: Int
    private let window: TimeAmount
    /// Bytes of the preface still to skip.
    private var prefaceLeft = HTTP2ResetFloodGuard.prefaceBytes
    /// Bytes of the current frame's header read so far (it may arrive split across reads).
    private var headerRead = 0
    /// The current frame's payload length, from header bytes 0–2.
    private var payloadLength = 0
    /// The current frame's type, header byte 3.
    private var frameType: UInt8 = 0
    /// Payload bytes of the current frame still to skip.
    private var payloadLeft = 0
    /// Resets counted since `windowStart`.
    private var resets = 0
    private var windowStart = NIODeadline.now()
    private var closed = false

    /// A guard that closes the connection at its `limit`-th RST_STREAM frame within `window`.
    init(limit: Int = HTTP2ResetFloodGuard.defaultLimit, window: TimeAmount = HTTP2ResetFloodGuard.defaultWindow) {
        self.limit = limit
        self.window = window
    }

    /// Adds a guard before the connection's `NIOHTTP2Handler`. Must run on the
    /// channel's event loop (as the transport's connection callbacks do).
    static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(HTTP2ResetFloodGuard(), position: .before(try pipeline.handler(type: NIOHTTP2Handler.self)))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let bytes = unwrapInboundIn(data)
        if countResets(in: bytes.readableBytesView) {
            closed = true
            Self.shutDown(context.channel)
            return
        }
        context.fireChannelRead(data)
    }

    /// Ends a flooding connection as a client's end of input would: the
    /// socket's input is shut down, so the transport sees the input close and
    /// winds the connection up, consuming the streams the client opened
    /// (closing the whole channel at once, as `NIOHTTP2Handler` does on its
    /// limit, leaves them and their memory behind). A channel that cannot
    /// close its input alone is closed whole, and so is one still open after
    /// `fallbackDelay`.
    private static func shutDown(_ channel: any Channel) {
        let inputClosed = channel.eventLoop.makePromise(of: Void.self)
        inputClosed.futureResult.whenFailure { _ in channel.close(promise: nil) }
        channel.close(mode: .input, promise: inputClosed)
        let fallback = channel.eventLoop.scheduleTask(in: fallbackDelay) {
            if channel.isActive { channel.close(promise: nil) }
        }
        // Not held for the delay once the transport has closed the channel.
        channel.closeFuture.whenComplete { _ in fallback.cancel() }
    }

    /// Walks the frame headers in `bytes`; true when the resets reach the limit.
    private func countResets(in bytes: ByteBufferView) -> Bool {
        var index = bytes.startIndex
        let end = bytes.endIndex
        if prefaceLeft > 0 {
            let skipped = min(prefaceLeft, end - index)
            prefaceLeft -= skipped
            index += skipped
        }
        while index < end {
            if payloadLeft > 0 {
                let skipped = min(payloadLeft, end - index)
                payloadLeft -= skipped
                index += skipped
                continue
            }
            // A header byte: the length's three, the type, then flags and stream, skipped.
            let byte = bytes[index]
            index += 1
            if headerRead < 3 { payloadLength = payloadLength << 8 | Int(byte) } else if headerRead == 3 { frameType = byte }
            headerRead += 1
            guard headerRead == Self.frameHeaderBytes else { continue }
            payloadLeft = payloadLength
            headerRead = 0
            payloadLength = 0
            if frameType == Self.rstStreamType && recordReset() { return true }
        }
        return false
    }

    /// Counts one reset in the current window; true at the limit.
    private func recordReset() -> Bool {
        let now = NIODeadline.now()
        if now - windowStart >= window {
            windowStart = now
            resets = 0
        }
        resets += 1
        return resets >= limit
    }
}
#endif
