import Glibc
import HPS
@testable import HPSServer
import Logging
import ServiceLifecycle
import Testing

/// A blocking loopback TCP connection, to hold a request half sent.
final class LoopbackConnection {
    let descriptor: Int32
    /// The errno of the last receive that failed (EAGAIN: the 60 s passed), 0 when the peer closed.
    private(set) var receiveError: Int32 = 0

    /// Connects to 127.0.0.1:`port`; `nil` when refused.
    init?(port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); return nil }
        // Long enough for a loaded machine under ThreadSanitizer with the whole
        // suite running beside it (a 10 s wait once ran out there, at 53b14e2).
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        descriptor = fd
    }

    deinit { close(descriptor) }

    func send(_ bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        _ = array.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the peer closes (or 60 s pass).
    func receiveAll() -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n < 0 { receiveError = errno }
            if n <= 0 { break }
            result += chunk[0..<n]
        }
        return result
    }
}

struct GracefulShutdownTests {
    @Test("a graceful shutdown answers the request in flight and refuses new connections")
    func requestInFlight() async throws {
        var options = HPSServer.Options()
        options.httpPort = 0
        options.grpcPort = 0
        options.metricsPort = 0
        let fixture = try ServerFixture(options: options)
        let expected = try fixture.expected([[9], [109]])
        let logger = Logger(label: "test")
        let (ports, listening) = AsyncStream.makeStream(of: (String, Int).self)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: fixture.server.services(logger: logger) { what, _, port in listening.yield((what, port)) }, logger: logger))
        let body = Array(inferRequest(keys: [9, 109], numKeys: [1, 1]).serialized().utf8)
        let head = Array("POST /v2/models/\(fixture.model)/infer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        // How the group ended, for the report when the response is missing.
        let ended = Locked<String>("still running")
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                    ended.withLock { $0 = "returned" }
                } catch {
                    ended.withLock { $0 = "threw \(error)" }
                    throw error
                }
            }
            var httpPort = 0
            for await (what, port) in ports where what == "http" {
                httpPort = port
                break
            }
            let connection = try #require(LoopbackConnection(port: httpPort))
            connection.send(head + body[0..<10])
            // The shutdown must find the request in flight: wait until its
            // handler holds the model (a fixed sleep lost that race on a
            // loaded machine under ThreadSanitizer).
            for _ in 0..<600 where fixture.server.repository.activeRequests(fixture.model) == 0 {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(fixture.server.repository.activeRequests(fixture.model) == 1)
            await group.triggerGracefulShutdown()
            var refused = false
            for _ in 0..<100 {
                if LoopbackConnection(port: httpPort) == nil { refused = true; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(refused, "new connections are refused once shutdown begins")
            connection.send(body[10...])
            let sent = ContinuousClock.now
            let response = String(decoding: connection.receiveAll(), as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 200"),
                    "response \"\(response.prefix(200))\" after \(ContinuousClock.now - sent) (receive errno \(connection.receiveError)); the service group: \(ended.withLock { $0 })")
            let parts = response.split(separator: "\r\n\r\n", maxSplits: 1)
            try #require(parts.count == 2)
            let json = try JSONValue.parse(String(parts[1]))
            #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            try await tasks.waitForAll()
        }
    }
}

/// A record of events, in order, from any task.
final class EventLog: Sendable {
    private let events = Locked<[String]>([])
    func append(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }

    /// Waits until `event` is recorded (at most 10 s).
    func wait(for event: String) async throws {
        for _ in 0..<1000 where !all.contains(event) { try await Task.sleep(for: .milliseconds(10)) }
    }
}

/// Background work that runs until it is cancelled (or, with `endsAtOnce`, returns at once).
struct RecordedWork: BackgroundWork {
    let log: EventLog
    var endsAtOnce = false
    var name: String { "recorded work" }

    func run(blocking: BlockingRunner) async throws {
        log.append("work started")
        if endsAtOnce { return }
        do {
            try await Task.sleep(for: .seconds(3600))
        } catch {
            log.append("work cancelled")
            throw error
        }
    }
}

/// A service that, like a listener, stops at the graceful shutdown and records it.
struct RecordedListener: Service {
    let log: EventLog
    func run() async throws {
        try? await gracefulShutdown()
        log.append("listener stopped")
    }
}

struct ServiceOrderTests {
    @Test("the server's services are the lookups, then the KServe listeners, then metrics; after a graceful shutdown the batchers refuse requests")
    func lookupsBeforeListeners() async throws {
        var options = HPSServer.Options()
        options.httpPort = 0
        options.grpcPort = 0
        options.metricsPort = 0
        let fixture = try ServerFixture(options: options)
        let logger = Logger(label: "test")
        let services = fixture.server.services(logger: logger)
        #expect(services.count == 3)
        #expect(services.first is LookupService)
        let (ports, listening) = AsyncStream.makeStream(of: String.self)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: fixture.server.services(logger: logger) { what, _, _ in listening.yield(what) }, logger: logger))
        let batcher = try #require(fixture.server.routes.batchers[fixture.model])
        let batch = ServedModel.Batch(keysPerTable: [[4], [104]])
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var seen = Set<String>()
            for await what in ports {
                seen.insert(what)
                if seen.count == 3 { break }
            }
            #expect(try await batcher.lookup(batch) == fixture.expected(batch.keysPerTable))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        await #expect(throws: InferenceError.shuttingDown(model: fixture.model)) { try await batcher.lookup(batch) }
    }

    @Test("background work runs until the graceful shutdown cancels it, after the services listed after it have stopped")
    func backgroundWorkStopsLast() async throws {
        let log = EventLog()
        let logger = Logger(label: "test")
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [BackgroundWorkService(RecordedWork(log: log)), RecordedListener(log: log)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await log.wait(for: "work started")
            #expect(log.all == ["work started"])
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(log.all == ["work started", "listener stopped", "work cancelled"])
    }

    @Test("background work that ends by itself does not stop the server")
    func backgroundWorkEndingEarly() async throws {
        let log = EventLog()
        let logger = Logger(label: "test")
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [BackgroundWorkService(RecordedWork(log: log, endsAtOnce: true)), RecordedListener(log: log)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await log.wait(for: "work started")
            try await Task.sleep(for: .milliseconds(300))
            #expect(log.all == ["work started"], "the listener still runs")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(log.all == ["work started", "listener stopped"])
    }
}
