import Glibc
import HPS
import HPSServer
import Logging
import ServiceLifecycle
import Testing

/// A blocking loopback TCP connection, to hold a request half sent.
final class LoopbackConnection {
    let descriptor: Int32

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
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        descriptor = fd
    }

    deinit { close(descriptor) }

    func send(_ bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        _ = array.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the peer closes (or 10 s pass).
    func receiveAll() -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
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
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var httpPort = 0
            for await (what, port) in ports where what == "http" {
                httpPort = port
                break
            }
            let connection = try #require(LoopbackConnection(port: httpPort))
            connection.send(head + body[0..<10])
            try await Task.sleep(for: .milliseconds(300))
            await group.triggerGracefulShutdown()
            var refused = false
            for _ in 0..<100 {
                if LoopbackConnection(port: httpPort) == nil { refused = true; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(refused, "new connections are refused once shutdown begins")
            connection.send(body[10...])
            let response = String(decoding: connection.receiveAll(), as: UTF8.self)
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(response.prefix(200))")
            let parts = response.split(separator: "\r\n\r\n", maxSplits: 1)
            try #require(parts.count == 2)
            let json = try JSONValue.parse(String(parts[1]))
            #expect(floats(json["outputs"]?.arrayValue?.first?["data"]) == expected)
            try await tasks.waitForAll()
        }
    }
}
