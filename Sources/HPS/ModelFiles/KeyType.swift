/// The key type of a deployment: HugeCTR's `supportlonglong`.
public enum KeyType: String, Sendable, CaseIterable {
    /// int64 keys (`supportlonglong: true`).
    case int64
    /// 32-bit unsigned keys (`supportlonglong: false`); keys are int64 on disk
    /// and inside, and checked to fit at the edges.
    case int32

    /// Whether `key` is representable.
    @inlinable
    public func admits(_ key: Int64) -> Bool {
        self == .int64 || (key >= 0 && key <= Int64(UInt32.max))
    }
}
