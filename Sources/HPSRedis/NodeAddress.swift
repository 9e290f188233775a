/// A Redis node's `host:port`.
package struct NodeAddress: Hashable, Sendable, CustomStringConvertible {
    /// The host name or IP address.
    package var host: String
    /// The TCP port.
    package var port: Int

    /// Creates an address.
    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the last colon separates the port).
    package init?(_ text: Substring) {
        let text = text.trimmingWhitespace()
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              port > 0 && port < 65536, colon > text.startIndex else { return nil }
        host = String(text[..<colon])
        self.port = port
    }

    /// Parses the comma-separated list of `volatile_db.address`.
    package static func list(_ text: String) -> [NodeAddress]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: true)
        let addresses = parts.compactMap(NodeAddress.init)
        return addresses.count == parts.count && !addresses.isEmpty ? addresses : nil
    }

    /// `host:port`.
    package var description: String { "\(host):\(port)" }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
