/// The check both transports make of a request's credentials: the value of
/// the HTTP `Authorization` header or of the gRPC `authorization` metadata
/// must be `Bearer <token>`, compared in constant time.
enum BearerToken {
    /// Whether `value` is `Bearer ` followed by `token`.
    static func accepts(_ value: String, token: [UInt8]) -> Bool {
        let prefix = "Bearer "
        return value.hasPrefix(prefix) && constantTimeEqual(Array(value.utf8.dropFirst(prefix.utf8.count)), token)
    }

    /// Compares without returning early, so timing does not reveal a prefix.
    /// Lengths that differ never compare equal, whatever the bytes (a
    /// token of NUL bytes against a shorter value included).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = a.count == b.count ? 0 : 1
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
