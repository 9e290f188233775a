@testable import HPSServer
import Testing

/// The token check both transports make.
struct BearerTokenTests {
    @Test("only `Bearer <token>` is accepted: other tokens, prefixes, extensions and other lengths are not")
    func accepts() {
        let token = Array("s3cret".utf8)
        #expect(BearerToken.accepts("Bearer s3cret", token: token))
        for value in ["Bearer s3cre", "Bearer s3cret!", "bearer s3cret", "s3cret", "Bearer ", "", "Bearer S3cret"] {
            #expect(!BearerToken.accepts(value, token: token), "\(value)")
        }
    }

    @Test("values of other lengths never compare equal, NUL bytes included")
    func lengths() {
        let nul256 = [UInt8](repeating: 0, count: 256)
        #expect(!BearerToken.constantTimeEqual([], nul256))
        #expect(!BearerToken.constantTimeEqual([0], [0, 0]))
        #expect(!BearerToken.constantTimeEqual(Array(repeating: 0, count: 512), nul256))
        #expect(BearerToken.constantTimeEqual(nul256, nul256))
    }
}
