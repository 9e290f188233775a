#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
package import NIOCore
import NIOPosix

/// One TCP connection to one Redis node that pipelines commands: a call
/// writes all its commands at once, and their replies come back in order.
///
/// Thread safety: `send` may be called from any thread; the connection's state
/// lives on its event loop. A timeout or a closed connection fails every
/// outstanding request and leaves the connection closed (`isActive` false).
package final class RedisConnection: Sendable {
    /// `host:port`.
    package let address: String
    let channel: any Channel
    private let handler: RESPReplyHandler
    let timeout: TimeAmount

    private init(address: String, channel: any Channel, handler: RESPReplyHandler, timeout: TimeAmount) {
        self.address = address
        self.channel = channel
        self.handler = handler
        self.timeout = timeout
    }

    /// Whether the connection is open.
    package var isActive: Bool { channel.isActive }

    /// Connects, then authenticates if `password` is not empty.
    /// - Parameters:
    ///   - connectTimeout: the longest a connect may take.
    ///   - timeout: the longest a call of `send` may wait for its last reply.
    package static func connect(host: String, port: Int, group: any EventLoopGroup, connectTimeout: TimeAmount,
                               timeout: TimeAmount, userName: String = "default", password: String = "")
        -> EventLoopFuture<RedisConnection> {
        let address = "\(host):\(port)"
        let handler = RESPReplyHandler(address: address)
        let connected = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .connect(host: host, port: port)
            .flatMapErrorThrowing { error in throw RedisError.connectFailed(address: address, reason: reason(error)) }
            .map { RedisConnection(address: address, channel: $0, handler: handler, timeout: timeout) }
        guard !password.isEmpty else { return connected }
        return connected.flatMap { connection in
            connection.send([RedisCommand(["AUTH", userName.isEmpty ? "default" : userName, password])])
                .flatMapThrowing { replies in
                    if case let .error(message) = replies[0] {
                        connection.close()
                        throw RedisError.authenticationFailed(address: address, reason: message)
                    }
                    return connection
                }
        }
    }

    /// Writes `commands` in one flush and collects their replies in order.
    /// A reply that is a Redis error (`-MOVED …`) is a value, not a failure.
    /// - Returns: one reply per command; fails with `RedisError` if the
    ///   connection closes or no reply comes within the timeout.
    package func send(_ commands: [RedisCommand]) -> EventLoopFuture<[RESPValue]> {
        let loop = channel.eventLoop
        guard !commands.isEmpty else { return loop.makeSucceededFuture([]) }
        let promise = loop.makePromise(of: [RESPValue].self)
        let handler = self.handler, channel = self.channel, timeout = self.timeout
        loop.execute {
            let sinks = commands.contains { $0.sink != nil } ? commands.map(\.sink) : nil
            handler.enqueue(commands.count, sinks: sinks, promise: promise, channel: channel, timeout: timeout)
            for command in commands { channel.write(command.bytes, promise: nil) }
            channel.flush()
        }
        return promise.futureResult
    }

    /// Closes the connection; outstanding requests fail.
    package func close() {
        channel.close(promise: nil)
    }
}

/// Why a connect failed, in a few words: "Connection refused", not NIO's whole story.
private func reason(_ error: any Error) -> String {
    if let error = error as? NIOConnectionError, let first = error.connectionErrors.first {
        return reason(first.error)
    }
    if let error = error as? IOError {
        return String(cString: strerror(error.errnoCode))
    }
    if case let ChannelError.connectTimeout(amount) = error {
        return "no answer within \(amount.nanoseconds / 1_000_000) ms"
    }
    return "\(error)"
}

/// Parses replies and hands them to the requests waiting, in order.
/// Its state is touched only on its channel's event loop.
final class RESPReplyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    /// A call of `send`: how many replies it waits for, and those read so far.
    private struct Request {
        var expected: Int
        /// The sink of each command, or nil when none has one.
        var sinks: [VectorSink?]?
        var replies: [RESPValue]
        var promise: EventLoopPromise<[RESPValue]>
        var deadline: Scheduled<Void>?
    }

    let address: String
    private var received: ByteBuffer?
    private var requests = CircularBuffer<Request>()
    private var closed = false

    init(address: String) { self.address = address }

    func enqueue(_ count: Int, sinks: [VectorSink?]?, promise: EventLoopPromise<[RESPValue]>, channel: any Channel,
                 timeout: TimeAmount) {
        guard !closed, channel.isActive else {
            promise.fail(RedisError.connectionClosed(address: address))
            return
        }
        var replies: [RESPValue] = []
        replies.reserveCapacity(count)
        let address = self.address
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { [weak self] in
            // The order of replies is lost once one is given up: close, failing all.
            self?.failAll(RedisError.timeout(address: address, milliseconds: Int(timeout.nanoseconds / 1_000_000)))
            channel.close(promise: nil)
        }
        requests.append(Request(expected: count, sinks: sinks, replies: replies, promise: promise, deadline: deadline))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil || received!.readableBytes == 0 {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        do {
            while RESPParser.hasCompleteValue(received!) {
                let head = requests.startIndex
                let sink = requests.isEmpty ? nil : requests[head].sinks?[requests[head].replies.count]
                let parsed: RESPValue?
                if let sink {
                    parsed = try RESPParser.parse(&received!, into: sink)
                } else {
                    parsed = try RESPParser.parse(&received!)
                }
                guard let value = parsed else { break }
                guard !requests.isEmpty else { continue }  // a reply nobody waits for (after a timeout)
                requests[requests.startIndex].replies.append(value)
                if requests[requests.startIndex].replies.count == requests[requests.startIndex].expected {
                    let done = requests.removeFirst()
                    done.deadline?.cancel()
                    done.promise.succeed(done.replies)
                }
            }
            if received!.readableBytes == 0 { received = nil } else { received!.discardReadBytes() }
        } catch {
            failAll(RedisError.protocolError(address: address, reason: error.reason))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed(address: address))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError.connectionClosed(address: address))
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        closed = true
        while let request = requests.popFirst() {
            request.deadline?.cancel()
            request.promise.fail(error)
        }
    }
}
