import NIOCore
import NIOHTTP1
import NIOPosix

/// KServe v2 over HTTP/1.1 with keep-alive connections: the inputs (KEYS and
/// NUMKEYS, or KEYS0…) as Triton's binary tensor data, OUTPUT0 asked for as
/// binary data.
struct HTTPTransport: LoadTransport {
    let host: String
    let port: Int
    let model: String
    let group: MultiThreadedEventLoopGroup

    /// A transport to `host:port` whose event loops use `threads` threads.
    init(host: String, port: Int, model: String, threads: Int) {
        self.host = host
        self.port = port
        self.model = model
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    func connect() async throws -> any LoadConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ExchangeHandler())
                }
            }
            .connect(host: host, port: port).get()
        return HTTPConnection(channel: channel, host: host, port: port, model: model)
    }

    func shutdown() async throws {
        try await group.shutdownGracefully()
    }
}

/// One keep-alive connection.
struct HTTPConnection: LoadConnection {
    let channel: any Channel
    let host: String
    let port: Int
    let model: String

    func prepare(_ request: LoadRequest) -> any PreparedRequest {
        // The JSON header, then the raw little-endian tensors it declares.
        let declared = request.inputs.map { input in
            "{\"name\":\"\(input.name)\",\"datatype\":\"\(input.datatype)\","
                + "\"shape\":[\(input.shape.map(String.init).joined(separator: ","))],"
                + "\"parameters\":{\"binary_data_size\":\(input.byteCount)}}"
        }
        let header = "{\"inputs\":[\(declared.joined(separator: ","))],"
            + "\"outputs\":[{\"name\":\"OUTPUT0\",\"parameters\":{\"binary_data\":true}}]}"
        var body = channel.allocator.buffer(capacity: header.utf8.count + request.inputs.reduce(0) { $0 + $1.byteCount })
        let headerLength = body.writeString(header)
        for input in request.inputs { input.withUnsafeBytes { _ = body.writeBytes($0) } }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v2/models/\(model)/infer")
        head.headers.add(name: "Host", value: "\(host):\(port)")
        head.headers.add(name: "Content-Type", value: "application/octet-stream")
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        head.headers.add(name: "Inference-Header-Content-Length", value: String(headerLength))
        return HTTPPreparedRequest(channel: channel, head: head, body: body)
    }

    func close() async {
        try? await channel.close()
    }
}

/// One encoded HTTP request: its head and body.
struct HTTPPreparedRequest: PreparedRequest {
    let channel: any Channel
    let head: HTTPRequestHead
    let body: ByteBuffer

    func send() async throws -> LoadResponse {
        let promise = channel.eventLoop.makePromise(of: ExchangeHandler.Answer.self)
        channel.writeAndFlush(ExchangeHandler.Exchange(head: head, body: body, promise: promise), promise: nil)
        let answer = try await promise.futureResult.get()
        guard answer.status == 200 else {
            var body = answer.body
            return LoadResponse(status: answer.status, output: [], error: body.readString(length: body.readableBytes))
        }
        guard let jsonLength = answer.headerLength, jsonLength <= answer.body.readableBytes else {
            return LoadResponse(status: answer.status, output: [], error: "no Inference-Header-Content-Length in a binary response")
        }
        var payload = answer.body
        payload.moveReaderIndex(forwardBy: jsonLength)
        return LoadResponse(status: 200, output: payload.readBytes(length: payload.readableBytes) ?? [], error: nil)
    }
}

/// Writes one request and completes its promise with the response: one
/// exchange at a time on a keep-alive connection.
final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Exchange
    typealias OutboundOut = HTTPClientRequestPart

    /// A request and where its answer goes.
    struct Exchange: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var promise: EventLoopPromise<Answer>
    }

    /// A whole response.
    struct Answer: Sendable {
        var status: Int
        var headerLength: Int?
        var body: ByteBuffer
    }

    private var promise: EventLoopPromise<Answer>?
    private var answer = Answer(status: 0, headerLength: nil, body: ByteBuffer())

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard self.promise == nil else {
            exchange.promise.fail(ChannelError.inappropriateOperationForState)
            return
        }
        self.promise = exchange.promise
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(exchange.body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            let length = head.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0
            answer = Answer(status: Int(head.status.code),
                            headerLength: head.headers.first(name: "Inference-Header-Content-Length").flatMap { Int($0) },
                            body: context.channel.allocator.buffer(capacity: length))
        case var .body(part):
            answer.body.writeBuffer(&part)
        case .end:
            let done = promise
            promise = nil
            done?.succeed(answer)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
        context.fireChannelInactive()
    }
}
