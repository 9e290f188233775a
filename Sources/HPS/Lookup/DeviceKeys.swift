/// Keys in one GPU's memory, for a lookup whose keys never visit the host
/// (a PyTorch CUDA tensor's, through the C interface).
///
/// The core module never reads them: a session checks their count, type and
/// device, and the GPU caches (`HPSCUDA`) read them on the device.
public struct DeviceKeys: Sendable, Hashable {
    /// The first key.
    public var start: DevicePointer<UInt8>
    /// Keys.
    public var count: Int
    /// How each key is stored: 8-byte signed keys (`.int64`), or 4-byte keys
    /// read as unsigned 32-bit ones (`.int32`). It must be the deployment's
    /// key type (`supportlonglong`): the keys are read as they lie.
    public var type: KeyType

    /// `count` keys of `type` from `start`.
    @inlinable
    public init(start: DevicePointer<UInt8>, count: Int, type: KeyType) {
        self.start = start
        self.count = count
        self.type = type
    }

    /// Bytes the keys take.
    @inlinable
    public var byteCount: Int { count * type.byteWidth }

    /// Whether `next` begins where these keys end, on the same device.
    @inlinable
    public func isFollowed(by next: DeviceKeys) -> Bool {
        next.start.device == start.device && next.start.address == start.address &+ UInt64(byteCount)
    }
}

extension KeyType {
    /// Bytes of one key in device memory: 8, or 4 for 32-bit keys.
    @inlinable
    public var byteWidth: Int { self == .int64 ? 8 : 4 }
}
